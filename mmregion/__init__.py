"""mmregion: region-level self-supervised pre-training for object detection.

``import mmregion`` (also through ``custom_imports`` of an mmdet config)
changes exactly these things outside mmregion, each once and idempotent:

1. :func:`~mmregion.utils.checkpoint.install_safe_checkpoint_loader`: adds
   the benign types mmengine writes into checkpoints (numpy arrays/dtypes,
   ``HistoryBuffer``) to torch's ``weights_only`` allow-list, which torch
   >= 2.6 needs to ``resume``/``load_from`` them, and registers the safe
   loader for local paths with mmengine's ``CheckpointLoader.register_scheme``
   (one-line errors naming the file; the same allow-list on torch < 2.6);
2. :func:`~mmregion.utils.setup_env.register_config_package`: lets configs
   inherit ``'mmregion::...'`` (an entry in mmengine's package table).

Nothing is monkey-patched and mmengine's file backends are left alone:
atomic checkpoint writes come from mmregion's ``CheckpointHook``
(:class:`~mmregion.engine.hooks.SafeCheckpointHook`). Before any of this,
:func:`~mmregion.dependency.check_dependencies` checks that the torch /
OpenMMLab stack is in the supported range, with a clear message otherwise.
"""
from .dependency import check_dependencies  # stdlib only: runs first
from .version import __version__, version_info

check_dependencies()

from .utils.checkpoint import install_safe_checkpoint_loader  # noqa: E402
from .utils.setup_env import register_config_package  # noqa: E402

install_safe_checkpoint_loader()  # docs/reliability.md section 1
register_config_package()  # `_base_ = 'mmregion::...'` (setup.py ships .mim)

__all__ = ['__version__', 'version_info']
