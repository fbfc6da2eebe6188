"""Moved to :mod:`mmregion.apis.cli`; this old path is an alias of it."""
import sys

from mmregion.apis import cli as _moved

sys.modules[__name__] = _moved
