"""Moved to :mod:`mmregion.apis.checkpoint_convert`; this old path is an
alias of it."""
import sys

from mmregion.apis import checkpoint_convert as _moved

sys.modules[__name__] = _moved
