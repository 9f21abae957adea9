"""User-facing errors. The CLI prints these as one clear message, never a traceback."""


class FerkitError(Exception):
    """Base class for every error caused by user input (files, flags, configs)."""


class DataError(FerkitError):
    """A data file or folder is missing, unreadable or malformed."""


class ConfigError(FerkitError):
    """A model spec or training config has invalid fields."""
