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

Several ranks: with ``randomness.diff_rank_seed=True`` (our default runtime)
every rank has its own generator state, but only rank 0 writes the
checkpoint. The hook therefore all-gathers the states of all ranks after
every training iteration (a few KiB; the checkpoint hooks save after it),
writes them as ``per_rank_torch``/``per_rank_cuda`` and gives each rank its
own state back on resume.
"""
from typing import Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook

from mmregion.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save torch's RNG state in checkpoints; restore it on resume only.

    The state lives in ``checkpoint['meta']['rng_state']`` (uint8 tensors,
    loadable with ``weights_only=True``). ``load_from`` (fine-tuning) leaves
    the generators alone.
    """

    # before CheckpointHook (NORMAL) in after_train_iter: the gathered
    # states are those the checkpoint of this iteration must hold
    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self._rank_states: Optional[dict] = None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Gather every rank's generator state (distributed runs only)."""
        if dist.get_world_size() <= 1:
            return
        states = dict(per_rank_torch=[
            s.cpu() for s in dist.all_gather(torch.get_rng_state())
        ])
        if torch.cuda.is_available():
            states['per_rank_cuda'] = [
                s.cpu() for s in dist.all_gather(torch.cuda.get_rng_state())
            ]
        # saved at this iteration (iteration hooks) or right after it
        # (epoch hooks, runner.iter already incremented)
        self._rank_states = dict(iter=runner.iter, states=states)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        gathered = self._rank_states
        if gathered is not None and \
                runner.iter - gathered['iter'] in (0, 1):
            state.update(gathered['states'])
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
        rank, world_size = dist.get_rank(), dist.get_world_size()
        per_rank = state.get('per_rank_torch')
        if per_rank is not None and len(per_rank) == world_size:
            torch.set_rng_state(per_rank[rank])
            per_cuda = state.get('per_rank_cuda')
            if per_cuda is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state(per_cuda[rank])
            return
        if world_size > 1 or per_rank is not None:
            runner.logger.warning(
                f'The checkpoint holds the RNG state of '
                f'{len(per_rank) if per_rank else 1} rank(s), this run has '
                f'{world_size}: every rank restores rank 0\'s state (not '
                'bit-identical to an uninterrupted run).')
        torch.set_rng_state(state['torch'])
        cuda_states = state.get('cuda')
        if cuda_states and torch.cuda.is_available() and \
                len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
