"""Build script. Metadata lives in setup.cfg; this file adds what setup.cfg
cannot express:

* requirements read from ``requirements/*.txt`` (runtime ranges only; the
  torch / OpenMMLab stack is checked at import, see
  ``requirements/mminstall.txt``);
* ``configs/``, ``tools/``, ``benchmarks/`` (``tools/check_gpu.py`` imports
  its scripts) and ``model-index.yml`` as ``mmregion/.mim/``, the layout that
  mmengine (``_base_ = 'mmregion::...'``) and openmim (``mim train`` /
  ``mim search`` / ``mim run``) read from an installed package: copied into
  a wheel, linked in the source tree by an editable install (as mmdet's
  ``add_mim_extension``).
"""
import os
import os.path as osp
import platform
import shutil
from typing import List

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop
from setuptools.command.editable_wheel import editable_wheel

ROOT = osp.dirname(osp.abspath(__file__))
MIM_ITEMS = ('configs', 'tools', 'benchmarks', 'model-index.yml')
# not shipped: generated outputs and caches
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', 'results')


def parse_requirements(fname: str) -> List[str]:
    """Requirement lines of ``fname`` (comments, blanks, ``-r`` dropped)."""
    reqs = []
    with open(osp.join(ROOT, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension(target: str, link: bool) -> None:
    """Put :data:`MIM_ITEMS` in ``target`` (a ``mmregion/.mim`` folder).

    Args:
        target (str): The ``.mim`` folder to fill.
        link (bool): Relative symlinks to the repository's own files (an
            editable install: edits show at once) instead of copies (a
            wheel: self-contained). Windows, where symlinks usually fail,
            always copies.
    """
    link = link and platform.system() != 'Windows'
    os.makedirs(target, exist_ok=True)
    for item in MIM_ITEMS:
        src, dst = osp.join(ROOT, item), osp.join(target, item)
        if not osp.exists(src):
            raise FileNotFoundError(f'setup.py: {src} is missing')
        _remove(dst)
        if link:
            os.symlink(osp.relpath(src, target), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also fills ``mmregion/.mim``.

    A wheel gets copies in its build directory (the source tree stays
    clean); an editable install (``pip install -e .``, PEP 660) gets links
    in the source tree's ``mmregion/.mim`` (git-ignored), the package that
    the editable install points at.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            add_mim_extension(osp.join(ROOT, 'mmregion', '.mim'), link=True)
        else:
            add_mim_extension(
                osp.join(self.build_lib, 'mmregion', '.mim'), link=False)


class DevelopWithMim(develop):
    """``python setup.py develop`` (legacy editable): links as above."""

    def run(self) -> None:
        super().run()
        add_mim_extension(osp.join(ROOT, 'mmregion', '.mim'), link=True)


class _CheckoutFirst:
    """Wraps setuptools' editable-install strategy: also writes a ``.pth``
    that puts the checkout on ``sys.path`` before site-packages (after the
    ``PYTHONPATH`` entries).

    mmengine reads ``_base_ = 'mmregion::...'`` from
    ``<location of the mmregion metadata>/mmregion/.mim`` (``pkg_resources``;
    ``mmengine.utils.get_installed_path``). A PEP 660 editable install keeps
    its metadata in site-packages, where no ``mmregion`` folder exists, so
    the lookup fails. With the checkout before site-packages, the metadata
    found first is the checkout's own ``mmregion.egg-info`` (written by this
    build), whose location is the checkout, and ``mmregion`` is imported
    from the checkout as before. This is the ``sys.path`` entry the legacy
    ``setup.py develop`` used to add (mmdet's ``add_mim_extension`` relies
    on it).
    """

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        # after the PYTHONPATH entries (which must still shadow an
        # editable install, e.g. another checkout or a wheel in a
        # --target folder), before site-packages
        line = ('import os, sys; e = [x for x in os.environ.get('
                "'PYTHONPATH', '').split(os.pathsep) if x in sys.path]; "
                f'{ROOT!r} in sys.path or sys.path.insert(max([sys.path.'
                f'index(x) + 1 for x in e] or [0]), {ROOT!r})\n')
        wheel.writestr('__editable__.mmregion-checkout.pth', line)

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)


class EditableWheelWithMim(editable_wheel):
    """``pip install -e .``: the editable wheel gets :class:`_CheckoutFirst`.
    """

    def _select_strategy(self, *args, **kwargs):
        return _CheckoutFirst(super()._select_strategy(*args, **kwargs))


setup(
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'mim': parse_requirements('requirements/mminstall.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
    },
    cmdclass={
        'build_py': BuildPyWithMim,
        'develop': DevelopWithMim,
        'editable_wheel': EditableWheelWithMim
    },
)
