"""The base class of errors that are the user's to fix (shown as one line).

Shared by the library (a refused checkpoint, a malformed input file) and
the command-line tools, which print such an error without a traceback
(:func:`mmregion.apis.cli.explain_exception`).
"""

__all__ = ['UserError']


class UserError(Exception):
    """An error caused by the command line or the config, shown as one line."""
