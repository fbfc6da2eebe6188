"""Moved to :mod:`mmregion.apis.visualization`; this old path is an alias of
it."""
import sys

from mmregion.apis import visualization as _moved

sys.modules[__name__] = _moved
