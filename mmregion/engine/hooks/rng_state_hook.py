"""Carry the model-side random state through checkpoints (bit-for-bit resume).

mmengine restores weights, optimizer, schedulers, buffers (queues, EMA
encoders, curriculum state) and the message hub on ``resume``, but not the
random number generators. Our algorithms draw their model-side randomness
(CCOP's box jitter, PLRC's point sampling) from torch's global generator in
the main process, so a resumed run would sample other jitters/points than
the uninterrupted one. This hook saves that generator's state (CPU and every
CUDA device) with each checkpoint and restores it when a run resumes.

The data side needs nothing: with ``num_workers=0`` the transforms draw from
numpy/python ``random``, which mmengine re-seeds and the iteration-based loop
replays when it skips the already-trained batches; with workers, each worker
is re-seeded deterministically by mmengine's ``worker_init_fn``.
"""
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmregion.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save torch's RNG state in checkpoints; restore it on resume only.

    The state lives in ``checkpoint['meta']['rng_state']`` (uint8 tensors,
    loadable with ``weights_only=True``). ``load_from`` (fine-tuning) leaves
    the generators alone.
    """

    priority = 'VERY_LOW'  # snapshot after every other hook touched meta

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return
        state: Optional[dict] = checkpoint.get('meta', {}).get('rng_state')
        if state is None:
            runner.logger.warning(
                'The checkpoint has no rng_state (written without '
                'RNGStateHook): the resumed run is not bit-identical to an '
                'uninterrupted one.')
            return
        torch.set_rng_state(state['torch'])
        cuda_states = state.get('cuda')
        if cuda_states and torch.cuda.is_available() and \
                len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
