"""Moved to :mod:`mmregion.apis.object_probe`; this old path is an alias of
it."""
import sys

from mmregion.apis import object_probe as _moved

sys.modules[__name__] = _moved
