"""Import-time checks of the torch / OpenMMLab stack (versions from metadata).

``pip install mmregion`` does not install or replace torch, torchvision,
mmcv, mmengine, mmdet or mmpretrain (as mmdet and mmpretrain do not): they
are checked here instead, against the ranges of
``requirements/mminstall.txt``. The checks read installed distributions'
metadata only (no heavy imports, no mmengine needed), so ``import mmregion``
stays cheap and the message names the package and the supported range
instead of failing later deep inside mmdet or mmpretrain. Stdlib only, so
it runs before anything imports torch or mmengine.
"""
import re
import sys
from importlib import metadata
from typing import Dict, List, Optional, Tuple

# name -> (minimum inclusive, maximum exclusive); None = unbounded.
# Tested: the lock, requirements/constraints.txt (docs/get_started.md
# "Supported stack").
SUPPORTED: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    # torch.load(weights_only=...) and pickle_module (restricted unpickler
    # on torch < 2.6, see mmregion/utils/restricted_torch_load.py)
    'torch': ('2.0.0', None),
    'torchvision': (None, None),
    'mmcv': ('2.0.0', '2.2.0'),  # mmdet 3.3.0 asserts mmcv < 2.2.0
    'mmengine': ('0.10.0', '0.11.0'),
    'mmdet': ('3.3.0', '3.4.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
    # mmcv 2.1.0 predates numpy 2: its adjust_hue (every ColorJitter with a
    # hue) raises OverflowError on numpy 2 (requirements/runtime.txt)
    'numpy': (None, '2'),
    # mmengine 0.10.7 and openmim import pkg_resources, removed in 81
    'setuptools': (None, '81'),
}
# checked by tools/install.sh only (not at import: any OpenCV build with
# cv2.ximgproc works); 4.12 and later require numpy >= 2
INSTALL_RANGES: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    'opencv-contrib-python-headless': ('4.5', '4.12'),
}
# the one-command fix of each package, named in the error
FIX: Dict[str, str] = {
    'numpy': 'pip install "numpy<2"',
    'setuptools': 'pip install "setuptools<81"',
}
# mmpretrain 1.2.0's multimodal code imports a helper removed in 4.56
INCOMPATIBLE: Dict[str, str] = {'transformers': '4.56.0'}

INSTALL_HINT = (
    'fix: `bash tools/install.sh` (installs the tested versions of '
    'requirements/constraints.txt), or install the ranges of '
    'requirements/mminstall.txt and requirements/runtime.txt '
    '(docs/get_started.md "Supported stack")')


def version_tuple(version: str) -> tuple:
    """A comparable tuple for a PEP 440 version string (no dependencies).

    ``'2.13.0+cpu'`` -> ``(2, 13, 0, inf)``; a pre-release sorts before its
    release: ``'2.0.0rc4'`` -> ``(2, 0, 0, -1, 4)``.

    Args:
        version (str): The version string.

    Returns:
        tuple: Release numbers, then ``inf`` (a release) or ``-1`` and the
        pre-release number.
    """
    release = version.split('+')[0]
    m = re.match(r'(\d+(?:\.\d+)*)(?:\.?(a|b|rc|dev)\.?(\d*))?', release)
    if m is None:
        return (0, )
    nums = [int(x) for x in m.group(1).split('.')]
    nums += [0] * (3 - len(nums))
    if m.group(2):
        return tuple(nums) + (-1, int(m.group(3) or 0))
    return tuple(nums) + (float('inf'), )


def _installed(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def dependency_status(name: str) -> Tuple[Optional[str], bool]:
    """Installed version of a :data:`SUPPORTED` package and whether it fits.

    Args:
        name (str): Distribution name, a key of :data:`SUPPORTED`.

    Returns:
        tuple: ``(version or None, in_range)``; ``in_range`` is False when
        the package is missing.
    """
    lo, hi = SUPPORTED[name]
    ver = _installed(name)
    if ver is None:
        return None, False
    v = version_tuple(ver)
    too_old = bool(lo) and v < version_tuple(lo)
    too_new = bool(hi) and v >= version_tuple(hi)
    return ver, not (too_old or too_new)


def supported_range(name: str) -> str:
    """``'>=2.0.0,<2.2.0'`` for a :data:`SUPPORTED` package."""
    lo, hi = SUPPORTED[name]
    return ','.join(
        s for s in ((f'>={lo}' if lo else ''), (f'<{hi}' if hi else '')) if s)


def find_dependency_problems() -> List[str]:
    """Return one human-readable line per dependency problem (empty: fine)."""
    problems = []
    for name in SUPPORTED:
        ver, ok = dependency_status(name)
        if ver is None:
            problems.append(f'{name} is not installed (need {name}'
                            f'{supported_range(name)}).')
        elif not ok:
            fix = f' ({FIX[name]})' if name in FIX else ''
            problems.append(f'{name}=={ver} is installed, mmregion supports '
                            f'{name}{supported_range(name)}{fix}.')
    for name, bad_from in INCOMPATIBLE.items():
        ver = _installed(name)
        if ver is not None and version_tuple(ver) >= version_tuple(bad_from):
            problems.append(
                f'{name}=={ver} breaks `import mmpretrain` (1.2.0); install '
                f'{name}<{bad_from} or uninstall it.')
    return problems


class UnsupportedEnvironmentError(ImportError):
    """The torch / OpenMMLab stack is missing or outside mmregion's ranges."""


def _one_line_excepthook(previous):
    """An excepthook that prints an uncaught
    :class:`UnsupportedEnvironmentError` as its one-line message (no
    traceback: the problem is the environment, not a line of code) and
    hands every other exception to ``previous``."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, UnsupportedEnvironmentError):
            print(exc, file=sys.stderr)
        else:
            previous(exc_type, exc, tb)

    return hook


def check_dependencies() -> None:
    """Raise :class:`UnsupportedEnvironmentError` (one line) if any problem.

    Uncaught (``python tools/train.py ...`` or ``python -c 'import
    mmregion'``), it prints as that one line and exits with status 1.

    Raises:
        UnsupportedEnvironmentError: ``mmregion: unsupported environment:
            numpy==2.4.6 is installed, mmregion supports numpy<2 (pip
            install "numpy<2"). fix: ...``.
    """
    problems = find_dependency_problems()
    if problems:
        sys.excepthook = _one_line_excepthook(sys.excepthook)
        raise UnsupportedEnvironmentError(
            'mmregion: unsupported environment: ' + ' '.join(problems) + ' ' +
            INSTALL_HINT)
