"""An mmengine ``Runner`` that keeps the config dump off the console.

mmengine's ``Runner`` prints the system environment, the whole config and
its table of hooks (300-700 lines) to the console before it builds
anything, so a config error
or a refused ``--resume`` ended several screens below its cause.
:class:`QuietRunner` (used by ``tools/train.py`` when the config names no
``runner_type``) writes both to the log file only and prints one line
saying where they are. ``MMREGION_DEBUG=1`` in the environment gives
mmengine's output (and the tools' tracebacks) back.
"""
import logging
import os
import os.path as osp

from mmengine.runner import Runner

__all__ = ['QuietRunner', 'debug_mode']


def debug_mode() -> bool:
    """True when ``MMREGION_DEBUG`` is set to a non-empty value other than
    ``0``: the tools then show tracebacks and mmengine's full console
    output."""
    return os.environ.get('MMREGION_DEBUG', '') not in ('', '0')


def _drop(record: logging.LogRecord) -> bool:
    return False


def _drop_hook_table(record: logging.LogRecord) -> bool:
    """Keep the runner's table of hooks (70 lines) off the console."""
    return not str(record.msg).startswith('Hooks will be executed in the')


class QuietRunner(Runner):
    """``Runner`` whose environment, config and hook table go to the log
    file only.

    Everything else (training logs, warnings, errors) is unchanged.
    """

    def _log_env(self, env_cfg: dict) -> None:
        if debug_mode():
            return super()._log_env(env_cfg)
        consoles = [
            h for h in self.logger.handlers
            if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)
        ]
        for handler in consoles:
            handler.addFilter(_drop)
            handler.addFilter(_drop_hook_table)
        try:
            super()._log_env(env_cfg)
        finally:
            for handler in consoles:
                handler.removeFilter(_drop)
        files = [
            h.baseFilename for h in self.logger.handlers
            if isinstance(h, logging.FileHandler)
        ]
        where = files[0] if files else osp.join(self.log_dir, '*.log')
        self.logger.info(f'System environment and config written to {where}'
                         ' (MMREGION_DEBUG=1 prints them here)')
