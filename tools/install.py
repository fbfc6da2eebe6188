"""Install the tested mmregion stack through the lock (``tools/install.sh``).

Every version comes from ``requirements/constraints.txt`` (the lock, see
``tools/lock_stack.py``), installed with ``pip install -c``. A torch /
OpenMMLab package (:data:`KEEP_IN_RANGE`) already installed *in* mmregion's
supported range (``mmregion/dependency.py``) is kept (the lock is rewritten
for that run to the installed version); a package *out of* its range (numpy
2.x, say) is replaced by the lock's version, with one line saying so.
Everything else follows the lock exactly. When nothing differs from the
lock, no pip command runs and a second run takes seconds.

Order: plain dependencies (numpy, OpenCV, the build tools, the stack's
imports) -> torch + torchvision -> mmengine / mmdet / mmpretrain / openmim
with ``--no-deps`` -> mmcv compiled from its sdist with ops -> one OpenCV
distribution -> mmregion (editable) -> ``tools/check_install.py``.

Stdlib only: it runs before anything is installed.
"""
import argparse
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import tempfile
from importlib import metadata
from typing import Dict, List, Optional

import lock_stack

ROOT = lock_stack.ROOT
# an in-range version already installed is kept (a cluster's torch with a
# prebuilt mmcv); the other ranged packages (numpy, setuptools, OpenCV)
# follow the lock
KEEP_IN_RANGE = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet',
                 'mmpretrain')
# other distributions of the cv2 module: one OpenCV, the contrib build
OTHER_OPENCV = ('opencv-python', 'opencv-python-headless',
                'opencv-contrib-python')


def _load_dependency():
    """``mmregion/dependency.py`` without importing mmregion (stdlib)."""
    spec = importlib.util.spec_from_file_location(
        '_mmregion_dependency', osp.join(ROOT, 'mmregion', 'dependency.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dependency = _load_dependency()
RANGES = {**dependency.SUPPORTED, **dependency.INSTALL_RANGES}


def say(msg: str) -> None:
    print(f'[install] {msg}', flush=True)


def die(msg: str) -> None:
    print(f'[install] ERROR: {msg}', file=sys.stderr, flush=True)
    sys.exit(1)


def installed(name: str) -> Optional[str]:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def in_range(name: str, version: str) -> bool:
    lo, hi = RANGES[name]
    v = dependency.version_tuple(version)
    return not ((lo and v < dependency.version_tuple(lo)) or
                (hi and v >= dependency.version_tuple(hi)))


def range_text(name: str) -> str:
    lo, hi = RANGES[name]
    return ','.join(
        s for s in (f'>={lo}' if lo else '', f'<{hi}' if hi else '')
        if s) or 'any'


def same_version(a: str, b: str) -> bool:
    """``2.13.0+cu130`` is the lock's ``2.13.0`` (a local build tag)."""
    return a.split('+')[0] == b.split('+')[0]


class Installer:
    """Plans and runs the pip commands of one install.

    Args:
        mode (str): ``'install'``, ``'dry-run'`` (print the pip commands)
            or ``'check'`` (``--no-install``: list what is missing).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.missing: List[str] = []
        self.lock = lock_stack.read_lock()
        self.kept: Dict[str, str] = {}  # in-range stack packages we keep
        for name in RANGES:
            ver = installed(name)
            if ver is None:
                continue
            if in_range(name, ver) and name not in KEEP_IN_RANGE:
                continue  # numpy, setuptools, OpenCV: the lock's version
            if in_range(name, ver):
                self.kept[name] = ver
                if not same_version(ver, self.lock.get(name, ver)):
                    say(f'{name} {ver} found (supported {range_text(name)}):'
                        ' keeping it')
            elif name in self.lock:
                say(f'{name} {ver} is outside the supported range '
                    f'{name}{range_text(name)}: replacing it by the '
                    f'tested {self.lock[name]}')
            else:
                die(f'{name} {ver} is outside the supported range '
                    f'{name}{range_text(name)}; use a fresh virtual '
                    'environment')
        pins = dict(self.lock)
        pins.update({n: v.split('+')[0] for n, v in self.kept.items()})
        fd, self.constraints = tempfile.mkstemp(
            prefix='mmregion-lock-', suffix='.txt')
        with os.fdopen(fd, 'w') as f:
            f.write('\n'.join(
                lock_stack.pin_line(n, v) for n, v in pins.items()) + '\n')
        self.pins = pins

    def satisfied(self, name: str) -> bool:
        """Installed at the lock's (or the kept in-range) version."""
        ver = installed(name)
        return ver is not None and same_version(ver, self.pins[name])

    def pip(self, reason: str, args: List[str], env: dict = None) -> None:
        """Run (or print / record) one ``pip install``."""
        cmd = [
            sys.executable, '-m', 'pip', 'install',
            '--disable-pip-version-check', '--root-user-action=ignore', '-c',
            self.constraints
        ] + args
        if self.mode == 'check':
            say(f'MISSING: {reason} (not installed: --no-install)')
            self.missing.append(reason)
            return
        if self.mode == 'dry-run':
            say(f"would install ({reason}): pip install {' '.join(args)}")
            return
        say(f"installing ({reason}): {' '.join(args)}")
        out = subprocess.run(cmd, env={**os.environ, **(env or {})})
        if out.returncode != 0:
            die(f'pip failed ({reason}); the command was: '
                f"{' '.join(cmd)}")

    def plain(self) -> None:
        """numpy, OpenCV, pycocotools, build tools, the stack's imports."""
        names = {
            n
            for fname in lock_stack.TOP_LEVEL
            for n in lock_stack.requirement_names(fname)
        }
        todo = sorted(n for n in names if not self.satisfied(n))
        if todo:
            self.pip(f"not at the locked version: {' '.join(todo)}",
                     ['-q'] + lock_stack.top_level_args())
        else:
            say('numpy, opencv, pycocotools, scipy, pytest, the linters and '
                'the stack imports are at the locked versions')

    def torch(self) -> None:
        if 'torch' in self.kept:
            if installed('torchvision') is None:
                die(f"torch {self.kept['torch']} is installed without "
                    'torchvision: install the torchvision release built for '
                    'it (https://pytorch.org/get-started/previous-versions/)')
            return
        self.pip('torch', ['-q', 'torch', 'torchvision'])
        if self.mode == 'install' and subprocess.run(
            [sys.executable, '-c', 'import torchvision.transforms.functional'],
                capture_output=True).returncode != 0:
            die('torchvision does not import against the installed torch (a '
                "'+cpu' torch wheel?). Run: pip install --force-reinstall -c "
                'requirements/constraints.txt torch torchvision')

    def no_deps(self) -> None:
        """mmengine, mmdet, mmpretrain, openmim: no second OpenCV."""
        todo = [
            f'{n}=={self.pins[n]}' for n in lock_stack.NO_DEPS
            if n != 'mmcv' and not self.satisfied(n) and n not in self.kept
        ]
        if todo:
            self.pip(' '.join(todo), ['-q', '--no-deps'] + todo)

    def mmcv(self) -> None:
        if 'mmcv' in self.kept:
            if self.mode == 'install' and subprocess.run(
                [sys.executable, '-c', 'import mmcv.ops'],
                    capture_output=True).returncode != 0:
                die(f"mmcv {self.kept['mmcv']} is installed without its "
                    'compiled ops (mmcv-lite?); mmregion needs mmcv.ops '
                    '(RoIAlign). Uninstall it and re-run this script.')
            return
        force_cuda = os.environ.get('FORCE_CUDA')
        if force_cuda is None:
            has_gpu = subprocess.run([
                sys.executable, '-c', 'import torch, sys; '
                'sys.exit(0 if torch.cuda.is_available() else 1)'
            ],
                                     capture_output=True).returncode == 0
            force_cuda = '1' if has_gpu and any(
                osp.exists(osp.join(p, 'nvcc'))
                for p in os.environ.get('PATH', '').split(':')) else '0'
        say(f"mmcv {self.pins['mmcv']} is built from source (FORCE_CUDA="
            f'{force_cuda}; ~11 min on 2 cores the first time, cached after)')
        self.pip(
            'mmcv', [
                '--no-build-isolation', '--no-deps',
                f"mmcv=={self.pins['mmcv']}"
            ],
            env=dict(
                MMCV_WITH_OPS='1',
                FORCE_CUDA=force_cuda,
                MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count() or 1))))

    def one_opencv(self) -> None:
        others = [n for n in OTHER_OPENCV if installed(n)]
        if not others or self.mode != 'install':
            return
        say(f"removing {' '.join(others)}: one OpenCV distribution "
            '(opencv-contrib-python-headless, which has cv2.ximgproc) owns '
            'the cv2 module')
        subprocess.run(
            [sys.executable, '-m', 'pip', 'uninstall', '-y', '-q'] + others,
            check=False)
        # the uninstall removed files that the contrib build shares
        self.pip('opencv-contrib-python-headless (restore cv2)', [
            '-q', '--force-reinstall', '--no-deps',
            'opencv-contrib-python-headless'
        ])

    def mmregion(self) -> None:
        check = ('import mmregion, os, sys; sys.exit(0 if os.path.realpath('
                 'os.path.dirname(mmregion.__file__)).startswith('
                 f'os.path.realpath({ROOT!r})) else 1)')
        if subprocess.run([sys.executable, '-c', check],
                          cwd='/',
                          capture_output=True).returncode == 0:
            say(f'mmregion (editable, {ROOT}) ok')
            return
        self.pip(f'mmregion from {ROOT} (editable)',
                 ['-q', '--no-build-isolation', '--no-deps', '-e', ROOT])

    def run(self) -> None:
        self.plain()
        self.torch()
        self.no_deps()
        self.mmcv()
        self.one_opencv()
        self.mmregion()
        os.unlink(self.constraints)
        if self.missing:
            die(f"missing (--no-install): {'; '.join(self.missing)}. Run "
                'bash tools/install.sh to install them.')
        if self.mode == 'dry-run':
            say('dry run done')
            return
        if self.mode == 'install':
            say('verifying')
            if subprocess.run(
                [sys.executable,
                 osp.join(ROOT, 'tools', 'check_install.py')]).returncode:
                die('verification failed (see above)')
        say('done')


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Install the tested mmregion stack through '
        'requirements/constraints.txt.')
    parser.add_argument(
        '--no-install',
        action='store_true',
        help='check only: list what is missing, exit 1 if '
        'anything is (or MMREGION_NO_INSTALL=1)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the pip commands instead of running them'
        ' (or MMREGION_DRY_RUN=1)')
    args = parser.parse_args()
    if args.no_install or os.environ.get('MMREGION_NO_INSTALL') == '1':
        mode = 'check'
    elif args.dry_run or os.environ.get('MMREGION_DRY_RUN') == '1':
        mode = 'dry-run'
    else:
        mode = 'install'
    say(f'python: {sys.version.split()[0]} at {sys.executable}')
    if mode == 'check':
        say('check only (--no-install): nothing will be installed')
    elif mode == 'dry-run':
        say('dry run: pip commands are printed, not run')
    Installer(mode).run()


if __name__ == '__main__':
    main()
