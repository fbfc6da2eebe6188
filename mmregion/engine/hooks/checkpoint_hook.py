"""A ``CheckpointHook`` that never leaves a run without a good checkpoint.

mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step`` deletes the
oldest kept checkpoint *before* it writes the new one. With
``max_keep_ckpts=1`` a job killed during the save has no checkpoint left, and
``last_checkpoint`` names the deleted file. It also saves whatever the model
holds: after a blow-up (an inf BatchNorm ``running_var``, a NaN in a queue)
``last_checkpoint`` names a poisoned state and ``--resume`` fails again.

:class:`SafeCheckpointHook` keeps mmengine's behaviour (file names,
``keep_ckpt_ids``, ``save_best``, ``published_keys``) and changes four
things:

- to a local folder, every checkpoint and ``last_checkpoint`` is written
  atomically (:mod:`mmregion.utils.atomic_io`), through mmengine's own
  extension points: a registered file backend
  (``backend_args=dict(backend='mmregion_atomic_local')``, unless the config
  sets ``backend_args``/``file_client_args``) and
  :func:`~mmregion.utils.atomic_io.atomic_write` for ``last_checkpoint``.
  Nothing of mmengine is patched;
- the checkpoint that leaves the ``max_keep_ckpts`` window is removed only
  after the new checkpoint *and* ``last_checkpoint`` are written. A kill in
  between leaves one checkpoint too many; its name is kept in the message
  hub (``'ckpts_to_remove'``) and a resumed run removes it;
- ``before_train`` removes the temporary files of dead writers (this host)
  from the checkpoint folder;
- with ``check_finite=True`` a model or optimizer state holding NaN/inf is
  not saved: ``FloatingPointError`` names the tensors and the last
  checkpoint with a finite state, which ``last_checkpoint`` still names.

It is registered in the ``mmregion`` scope as ``'CheckpointHook'`` (so
every config of default scope ``mmregion`` gets it, including mmengine's
default hooks) and as ``'SafeCheckpointHook'`` (for other scopes:
``type='mmregion.SafeCheckpointHook'``).
"""
import logging
import os.path as osp
from typing import Any, Iterator, List, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import get_file_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmregion.registry import HOOKS
from mmregion.utils.atomic_io import (atomic_backend_args, atomic_write,
                                      remove_stale_tmp_files)

__all__ = [
    'SafeCheckpointHook', 'find_nonfinite_tensors', 'write_last_checkpoint'
]

PENDING_KEY = 'ckpts_to_remove'


def _iter_tensors(obj: Any, prefix: str) -> Iterator[Tuple[str, Any]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _iter_tensors(v, f'{prefix}.{k}' if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _iter_tensors(v, f'{prefix}.{i}' if prefix else str(i))


def find_nonfinite_tensors(state: Any, prefix: str = '') -> List[str]:
    """Names of the floating-point tensors holding NaN or inf.

    One device synchronisation for the whole state.

    Args:
        state: A (nested) dict/list of tensors, e.g. a ``state_dict``.
        prefix (str): Prefix of the returned names. Defaults to ''.

    Returns:
        list[str]: The key paths of the bad tensors.
    """
    names, flags = [], []
    for name, value in _iter_tensors(state, prefix):
        if not (value.is_floating_point() or value.is_complex()) or \
                value.numel() == 0:
            continue
        names.append(name)
        flags.append((~torch.isfinite(value.detach())).any().reshape(1))
    if not flags:
        return []
    device = flags[0].device
    bad_mask = torch.cat([f.to(device) for f in flags]).cpu().tolist()
    return [name for name, is_bad in zip(names, bad_mask) if is_bad]


def write_last_checkpoint(work_dir: str, ckpt_path: str) -> None:
    """Atomically write ``work_dir/last_checkpoint`` naming ``ckpt_path``
    (what ``--resume`` / ``find_latest_checkpoint`` read)."""
    with atomic_write(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(ckpt_path)


@HOOKS.register_module(name=['CheckpointHook', 'SafeCheckpointHook'])
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose previous checkpoint survives a failed save.

    Arguments are those of mmengine's ``CheckpointHook`` plus:

    Args:
        check_finite (bool): Refuse to save a model/optimizer state holding
            NaN/inf (``FloatingPointError`` naming the tensors and the last
            finite checkpoint). Costs one pass over the state per save (no
            copy; small next to writing it). Defaults to True.
        **kwargs: ``interval``, ``by_epoch``, ``max_keep_ckpts``,
            ``save_last``, ``save_best``, ... of ``CheckpointHook``.
    """

    def __init__(self, *args, check_finite: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_finite = check_finite

    def before_train(self, runner) -> None:
        """mmengine's set-up, the atomic backend for a local folder, then
        clean what a killed run left behind."""
        super().before_train(runner)
        if self.backend_args is None and self.file_client_args is None and \
                type(self.file_backend) is LocalBackend:
            self.backend_args = atomic_backend_args()
            self.file_backend = get_file_backend(
                self.out_dir, backend_args=self.backend_args)
        if not is_main_process() or not self._is_local():
            return
        removed = remove_stale_tmp_files(self.out_dir)
        if removed:
            runner.logger.info(
                f'Removed {len(removed)} temporary file(s) of killed '
                f'checkpoint writers from {self.out_dir}: {removed}')
        pending = runner.message_hub.get_info(PENDING_KEY) or []
        keep = set(getattr(self, 'keep_ckpt_ids', ()))
        for step in pending:
            if step not in keep:
                self._remove_ckpt(runner, step)
        runner.message_hub.update_info(PENDING_KEY, [])

    def _is_local(self) -> bool:
        from mmengine.fileio.backends import LocalBackend
        return isinstance(self.file_backend, LocalBackend) and \
            osp.isdir(self.out_dir)

    def _remove_ckpt(self, runner, step: int) -> None:
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)

    def _check_finite(self, runner, step: int) -> None:
        model = runner.model
        bad = find_nonfinite_tensors(model.state_dict(), 'model')
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if optim_wrapper is not None and hasattr(optim_wrapper, 'state_dict'):
            bad += find_nonfinite_tensors(optim_wrapper.state_dict(),
                                          'optimizer')
        if not bad:
            return
        last = runner.message_hub.get_info('last_ckpt')
        where = (f'last_checkpoint still names {last}, the last checkpoint '
                 'with a finite state: resume from it with a lower learning '
                 'rate (tools/train.py CONFIG --resume --cfg-options '
                 'optim_wrapper.optimizer.lr=LOWER)'
                 if last else 'no checkpoint was written before')
        shown = ', '.join(
            bad[:5]) + (f' and {len(bad) - 5} more' if len(bad) > 5 else '')
        raise FloatingPointError(
            f'Non-finite training state at iteration {runner.iter} '
            f'(epoch {runner.epoch}): {len(bad)} tensor(s) hold NaN/inf: '
            f'{shown}. {self.filename_tmpl.format(step)} was not saved; '
            f'{where}.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Check, save, write ``last_checkpoint``, then drop the oldest.

        mmengine's ``CheckpointHook._save_checkpoint_with_step`` with two
        changes: the evicted checkpoint is removed last, and
        ``last_checkpoint`` is written atomically.
        """
        if self.check_finite:
            self._check_finite(runner, step)
        evicted = []
        if self.max_keep_ckpts > 0 and not (len(self.keep_ckpt_ids) > 0 and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                # mmengine deletes it now, before the save
                evicted.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        # saved inside the new checkpoint: a run resumed from it removes
        # the evicted files if we are killed before we do
        runner.message_hub.update_info(PENDING_KEY, evicted)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if is_main_process():
            write_last_checkpoint(runner.work_dir, self.last_ckpt)
            for old in evicted:
                self._remove_ckpt(runner, old)
        runner.message_hub.update_info(PENDING_KEY, [])
        if evicted:
            print_log(
                f'Removed checkpoint(s) {evicted} after saving {step}.',
                logger='current',
                level=logging.DEBUG)
