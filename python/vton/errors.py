"""The exception hierarchy of vton: everything derives from :class:`VtonError`."""


class VtonError(Exception):
    """Root of every error vton raises."""


class InvalidInputError(VtonError, ValueError):
    """An input has the wrong shape, size, value or content."""


class VtonFileNotFoundError(VtonError, FileNotFoundError):
    """An input file does not exist."""


class VtonIOError(VtonError, OSError):
    """A file exists but could not be read or written."""


class UnsupportedError(VtonError, NotImplementedError):
    """A declared option that is not implemented (e.g. lower-body garments)."""


class VtonRuntimeError(VtonError, RuntimeError):
    """A numerical or backend failure."""


class CheckpointError(InvalidInputError):
    """A checkpoint or config is unreadable or does not fit the model (names the key)."""


class CancelledError(VtonError):
    """A long operation was cancelled by its progress callback."""


__all__ = ["CheckpointError", "CancelledError", "VtonError", "InvalidInputError", "VtonFileNotFoundError", "VtonIOError", "UnsupportedError", "VtonRuntimeError"]
