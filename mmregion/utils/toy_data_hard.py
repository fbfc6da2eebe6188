"""Moved to :mod:`mmregion.testing.toy_data_hard`; this old path keeps
working (``tools/benchmark_transfer.py`` imports it)."""
from mmregion.testing.toy_data_hard import *  # noqa: F401,F403
