"""The package version, in a module that imports nothing (`softloc --version` stays instant)."""

__version__ = "0.2.0"
