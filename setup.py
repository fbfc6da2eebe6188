# Copyright (c) OpenMMLab. All rights reserved.
"""Thin shim: all metadata lives in setup.cfg."""
from setuptools import setup

setup()
