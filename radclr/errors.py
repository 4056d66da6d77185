"""Exceptions a user is meant to see.

Everything raised for bad *input* (data files, configs, arguments) derives from :class:`RadclrError`;
the command line prints its message without a traceback and exits with status 2. Programming errors
(bugs) keep their traceback.
"""

from __future__ import annotations


class RadclrError(Exception):
    """Base class of user-facing errors: the message must say what is wrong and where."""


class DataError(RadclrError):
    """A dataset, label table or box table is malformed."""


class ImageReadError(DataError):
    """An image file cannot be read. ``path`` names the file, ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(RadclrError):
    """A configuration file, override or parameter file is invalid (the message names the key)."""


class SplitError(DataError):
    """A split is invalid, e.g. one patient appears in two parts."""


class OutputError(RadclrError):
    """A file or folder cannot be written (read-only location, disk full, ...). ``path`` names it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingPackageError(RadclrError):
    """An optional package a feature needs is not installed (SimpleITK for NIfTI/NRRD, PyRadiomics for its engine)."""


def require_package(module: str, *, package: str, purpose: str):
    """``module``, imported; or :class:`MissingPackageError` in one line naming what needs it and what to install.

    radclr imports, trains and predicts on PNG/JPEG/DICOM without SimpleITK and PyRadiomics (a GPU machine without
    a package index may lack them); only the features that need them ask for them, through this function."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingPackageError(f"{purpose} needs {package}, which cannot be imported ({e}): "
                                  f"pip install {package}") from None
