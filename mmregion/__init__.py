# Copyright (c) OpenMMLab. All rights reserved.
"""mmregion: region-level self-supervised pre-training for object detection.

Importing the package checks that the OpenMMLab stack is in the supported
range (with a clear message otherwise) and makes checkpoint loading work with
torch's safe ``weights_only=True`` loader (see :mod:`mmregion.utils.checkpoint`).
"""
from .version import __version__, version_info
from .utils.dependency import check_dependencies

check_dependencies()

from .utils.checkpoint import install_safe_checkpoint_loader  # noqa: E402

install_safe_checkpoint_loader()

from .utils.atomic_io import install_atomic_file_backend  # noqa: E402

install_atomic_file_backend()  # atomic checkpoint writes (docs/reliability.md)

__all__ = ['__version__', 'version_info']
