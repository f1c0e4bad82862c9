"""Helpers shared by the example scripts for the reports they write into docs/."""

from importlib import metadata


def package_version(name):
    """Installed version of ``name``, or "not installed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
