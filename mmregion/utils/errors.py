"""The base class of errors that are the user's to fix (shown as one line).

Shared by the library (a refused checkpoint, a malformed input file) and
the command-line tools, which print such an error without a traceback
(:func:`mmregion.apis.cli.explain_exception`).
"""

__all__ = ['UserError', 'UserKeyError']


class UserError(Exception):
    """An error caused by the command line or the config, shown as one line."""


class UserKeyError(UserError, KeyError):
    """A missing entry the user must fix (e.g. images absent from a
    proposal store): a ``KeyError`` for library callers, one line (without
    the quotes ``KeyError`` puts around its message) for the tools."""

    def __str__(self) -> str:
        return Exception.__str__(self)
