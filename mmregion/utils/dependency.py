"""Moved to :mod:`mmregion.dependency` (importable before torch / mmengine)."""
from mmregion.dependency import (INCOMPATIBLE, INSTALL_HINT, SUPPORTED,
                                 check_dependencies, find_dependency_problems,
                                 version_tuple)

__all__ = [
    'INCOMPATIBLE', 'INSTALL_HINT', 'SUPPORTED', 'check_dependencies',
    'find_dependency_problems', 'version_tuple'
]
