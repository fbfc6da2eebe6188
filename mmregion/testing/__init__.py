"""Synthetic data for tests, demos and benchmarks (``tools/make_toy_coco.py``).

Not imported by ``import mmregion``; nothing in the training path uses it.
"""
from .toy_data import CATEGORIES, make_toy_coco
from .toy_data_hard import HARD_CATEGORIES, HARD_CLASSES, make_hard_toy_coco

__all__ = [
    'CATEGORIES', 'make_toy_coco', 'HARD_CATEGORIES', 'HARD_CLASSES',
    'make_hard_toy_coco'
]
