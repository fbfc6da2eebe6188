"""Check that a ``--resume`` checkpoint fits the model before resuming.

mmengine's ``Runner.resume`` loads the model's ``state_dict`` with
``strict=False``: a checkpoint of another method logs hundreds of
"unexpected key" lines and then fails deep in torch's
``Optimizer.load_state_dict``; a buffer of another shape (a changed
``img_queue_len``, say) is skipped with a warning, so the run silently
continues with a freshly initialised queue. :func:`check_resume_checkpoint`
turns both into one line naming the checkpoint and the first mismatching
key, before anything is loaded into the model.
"""
import os.path as osp
import re
from typing import Any, Dict, Optional

from mmengine.runner.checkpoint import find_latest_checkpoint

from mmregion.utils.errors import UserError

__all__ = ['resume_checkpoint_path', 'check_resume_checkpoint']


def resume_checkpoint_path(resume: Any, load_from: Optional[str],
                           work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's ``Runner.load_or_resume`` will resume.

    Args:
        resume (bool): ``cfg.resume``.
        load_from (str, optional): ``cfg.load_from``.
        work_dir (str): The run's work directory.

    Returns:
        str | None: The checkpoint, or None when nothing is resumed.
    """
    if not resume:
        return None
    if load_from is not None:
        return load_from
    return find_latest_checkpoint(work_dir)


def _shape(value: Any) -> Optional[tuple]:
    shape = getattr(value, 'shape', None)
    return tuple(shape) if shape is not None else None


def check_resume_checkpoint(model_state: Dict[str, Any],
                            checkpoint: Dict[str, Any], path: str) -> None:
    """Refuse to resume a checkpoint whose model state does not fit.

    Args:
        model_state (dict): ``state_dict()`` of the (unwrapped) model built
            from the config.
        checkpoint (dict): The loaded checkpoint (``state_dict`` key).
        path (str): The checkpoint file, for the message.

    Raises:
        UserError: One line naming ``path`` and the mismatch: keys of the
            checkpoint missing in the model (another method or config) or a
            tensor of another shape (e.g. a changed queue length), and the
            fix.
    """
    name = osp.basename(path) if len(path) > 200 else path
    state = checkpoint.get('state_dict') if isinstance(checkpoint,
                                                       dict) else None
    if not isinstance(state, dict):
        raise UserError(f'--resume: checkpoint {name} has no "state_dict" '
                        'to resume (not written by a training run?)')
    state = {re.sub(r'^module\.', '', str(k)): v for k, v in state.items()}
    unexpected = [k for k in state if k not in model_state]
    missing = [k for k in model_state if k not in state]
    fix = ('resume with the config that wrote it, or start from its weights'
           ' with --cfg-options load_from=CHECKPOINT (no --resume; keys '
           'that do not fit are then skipped with a warning)')
    if unexpected or missing:
        meta = checkpoint.get('meta') or {}
        written = meta.get('experiment_name') if isinstance(meta,
                                                            dict) else None
        by = f' (written by run {written})' if written else ''
        parts = []
        if unexpected:
            parts.append(f'{len(unexpected)} of its {len(state)} keys are '
                         f'not in the model (e.g. {unexpected[0]!r})')
        if missing:
            parts.append(f'{len(missing)} of the model\'s '
                         f'{len(model_state)} keys are not in it (e.g. '
                         f'{missing[0]!r})')
        raise UserError(
            f'--resume: checkpoint {name}{by} is of another model than this '
            f'config builds: {"; ".join(parts)}; another method or config? ' +
            fix)
    for key, value in model_state.items():
        want, got = _shape(value), _shape(state[key])
        if want is not None and got is not None and want != got:
            raise UserError(
                f'--resume: checkpoint {name}: {key!r} has shape '
                f'{list(got)} there but {list(want)} in this config\'s model '
                '(a changed length or size, e.g. a queue length); resuming '
                'would re-initialise it. Set the value the checkpoint was '
                'written with, or ' + fix)
