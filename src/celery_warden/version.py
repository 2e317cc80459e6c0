"""The package version, in the foundation so any layer can report it."""

__version__ = "0.1.0"

__all__ = ["__version__"]
