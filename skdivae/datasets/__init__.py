"""Data sets of the DiVAE paper's experiments."""

from ._rotated_mixture import RotatedGaussianMixture

__all__ = ["RotatedGaussianMixture"]
