from .checkpoint import (CheckpointError, CorruptCheckpointError,
                         UnsafeCheckpointError, install_safe_checkpoint_loader,
                         load_checkpoint_safely, safe_checkpoint_globals)
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'load_checkpoint_safely',
    'install_safe_checkpoint_loader', 'safe_checkpoint_globals',
    'UnsafeCheckpointError', 'CheckpointError', 'CorruptCheckpointError'
]
