"""Data sets of the DiVAE paper's experiments, and offline loaders for the benchmark data."""

from ._loaders import load_adbench, load_mnist, read_idx
from ._rotated_mixture import RotatedGaussianMixture

__all__ = ["RotatedGaussianMixture", "load_adbench", "load_mnist", "read_idx"]
