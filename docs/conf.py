"""Sphinx configuration (Markdown pages through myst-parser), as mmdet's and
mmpretrain's ``docs/en/conf.py``.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (needs ``sphinx``
and ``myst-parser``; ``tests/test_docs.py`` runs it when they are installed).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.abspath('..'))

project = 'mmregion'
author = 'mmregion contributors'
copyright = 'mmregion contributors'
version_file = osp.join(osp.dirname(__file__), '..', 'mmregion', 'version.py')
with open(version_file) as f:
    exec(compile(f.read(), version_file, 'exec'))
release = locals()['__version__']

extensions = ['myst_parser']
source_suffix = {'.md': 'markdown'}
master_doc = 'index'
exclude_patterns = ['_build']
myst_heading_anchors = 4
# links to files outside docs/ (configs, benchmarks results, the README) are
# checked by tests/test_docs.py; Sphinx cannot resolve them as documents
suppress_warnings = ['myst.xref_missing']
html_theme = 'alabaster'
