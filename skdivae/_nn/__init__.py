"""Torch modules behind DiVAE. Torch only: no scikit-learn, no numpy-facing API."""
