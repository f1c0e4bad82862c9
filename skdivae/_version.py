"""The package version, in one place (imported by the package and by the archive writer)."""

__version__ = "0.1.0.dev0"
