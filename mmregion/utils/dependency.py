# Copyright (c) OpenMMLab. All rights reserved.
"""Import-time checks of the OpenMMLab stack (versions read from metadata).

The checks read installed distributions' metadata only, so ``import mmregion``
stays cheap and the message names the package and the supported range instead
of failing later deep inside mmdet or mmpretrain.
"""
from importlib import metadata
from typing import Dict, List, Optional, Tuple

from mmengine.utils import digit_version

# name -> (minimum inclusive, maximum exclusive); None = unbounded
SUPPORTED: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    'mmcv': ('2.0.0', '2.2.0'),  # mmdet 3.3.0 asserts mmcv < 2.2.0
    'mmengine': ('0.10.0', '0.11.0'),
    'mmdet': ('3.3.0', '3.4.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
}
# mmpretrain 1.2.0's multimodal code imports a helper removed in 4.56
INCOMPATIBLE: Dict[str, str] = {'transformers': '4.56.0'}

INSTALL_HINT = 'Run `bash tools/install.sh` (see README.md) to install the ' \
    'supported stack.'


def _installed(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def find_dependency_problems() -> List[str]:
    """Return one human-readable line per dependency problem (empty: fine)."""
    problems = []
    for name, (lo, hi) in SUPPORTED.items():
        ver = _installed(name)
        if ver is None:
            problems.append(f'{name} is not installed (need >={lo},<{hi}).')
            continue
        v = digit_version(ver)
        if (lo and v < digit_version(lo)) or (hi and v >= digit_version(hi)):
            problems.append(f'{name}=={ver} is installed, mmregion supports '
                            f'{name}>={lo},<{hi}.')
    for name, bad_from in INCOMPATIBLE.items():
        ver = _installed(name)
        if ver is not None and digit_version(ver) >= digit_version(bad_from):
            problems.append(
                f'{name}=={ver} breaks `import mmpretrain` (1.2.0); install '
                f'{name}<{bad_from} or uninstall it.')
    return problems


def check_dependencies() -> None:
    """Raise ``ImportError`` with every problem listed, if there is any."""
    problems = find_dependency_problems()
    if problems:
        raise ImportError('mmregion: unsupported environment:\n  - ' +
                          '\n  - '.join(problems) + '\n' + INSTALL_HINT)
