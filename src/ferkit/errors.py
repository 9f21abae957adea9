"""User-facing errors. The CLI prints these as one clear message, never a traceback."""


class FerkitError(Exception):
    """Base class for every error caused by user input (files, flags, configs)."""


class DataError(FerkitError):
    """A data file or folder is missing, unreadable or malformed."""


class ConfigError(FerkitError):
    """A model spec or training config has invalid fields."""


class ImageError(FerkitError):
    """A photo or video cannot be used: not an image, corrupt, or too large.

    `reason` is one of "not_found", "not_image", "corrupt", "too_large" (the HTTP API maps it to a status)."""

    def __init__(self, message: str, reason: str = "not_image"):
        super().__init__(message)
        self.reason = reason
