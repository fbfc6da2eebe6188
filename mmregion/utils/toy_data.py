"""Moved to :mod:`mmregion.testing.toy_data`; this old path keeps working."""
from mmregion.testing.toy_data import *  # noqa: F401,F403
