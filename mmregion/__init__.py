"""mmregion: region-level self-supervised pre-training for object detection.

Importing the package checks that the torch / OpenMMLab stack is in the
supported range (with a clear message otherwise), makes checkpoint loading
work with torch's safe ``weights_only=True`` loader (see
:mod:`mmregion.utils.checkpoint`) and lets configs inherit
``'mmregion::...'`` from the installed package.
"""
from .dependency import check_dependencies  # stdlib only: runs first
from .version import __version__, version_info

check_dependencies()

from .utils.checkpoint import install_safe_checkpoint_loader  # noqa: E402

install_safe_checkpoint_loader()

from .utils.atomic_io import install_atomic_file_backend  # noqa: E402

install_atomic_file_backend()  # atomic checkpoint writes (docs/reliability.md)

from .utils.setup_env import register_config_package  # noqa: E402

register_config_package()  # `_base_ = 'mmregion::...'` (setup.py ships .mim)

__all__ = ['__version__', 'version_info']
