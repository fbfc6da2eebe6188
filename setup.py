"""Build script. Metadata lives in setup.cfg; this file adds what setup.cfg
cannot express:

* requirements read from ``requirements/*.txt`` (runtime ranges only; the
  torch / OpenMMLab stack is checked at import, see
  ``requirements/mminstall.txt``);
* ``configs/``, ``tools/`` and ``model-index.yml`` shipped in the wheel as
  ``mmregion/.mim/``, the layout that mmengine (``_base_ = 'mmregion::...'``)
  and openmim (``mim train`` / ``mim search``) read from an installed package.
"""
import os.path as osp
import shutil
from typing import List

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def parse_requirements(fname: str) -> List[str]:
    """Requirement lines of ``fname`` (comments, blanks, ``-r`` dropped)."""
    reqs = []
    with open(osp.join(ROOT, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


class BuildPyWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_ITEMS` to ``mmregion/.mim``.

    Copied (not linked) into the build directory only, so the source tree
    stays clean and a wheel is self-contained. Editable installs skip it:
    there the repository's own ``configs/`` and ``tools/`` are used.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = osp.join(self.build_lib, 'mmregion', '.mim')
        for item in MIM_ITEMS:
            src, dst = osp.join(ROOT, item), osp.join(target, item)
            if not osp.exists(src):
                raise FileNotFoundError(f'setup.py: {src} is missing')
            if osp.isdir(dst):
                shutil.rmtree(dst)
            if osp.isdir(src):
                shutil.copytree(
                    src,
                    dst,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copyfile(src, dst)


setup(
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'mim': parse_requirements('requirements/mminstall.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
    },
    cmdclass={'build_py': BuildPyWithMim},
)
