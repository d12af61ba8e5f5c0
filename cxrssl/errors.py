"""Errors that carry a message meant for the user, not a traceback."""


class CxrsslError(Exception):
    """Base class: the stage CLI prints the message and exits non-zero."""


class DataError(CxrsslError):
    """Bad input data: a malformed CSV, an unknown label, an unreadable image."""


class ParamError(CxrsslError):
    """A bad value in params.yaml or on the command line."""
