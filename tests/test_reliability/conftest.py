"""Fixtures of the reliability tests: a tiny model and an mmengine Runner."""
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch.utils.data import Dataset

import mmregion  # noqa: F401  (installs the atomic backend and safe loader)
from mmregion.models.utils import NonFiniteLossGuardMixin


class ToyDataset(Dataset):
    """8 fixed samples ``dict(inputs=(4,) float tensor)``."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i])


class ToyModel(NonFiniteLossGuardMixin, BaseModel):
    """A linear model with two losses; ``loss_x`` is NaN at ``nan_at`` iters.

    Args:
        nan_at (set[int]): Values of ``runner.iter`` (MessageHub ``'iter'``)
            at which ``loss_x`` is NaN.
    """

    def __init__(self, nan_at=()) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_at = set(nan_at)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        if mode != 'loss':
            return out
        loss_x = ((out - 1)**2).mean()
        loss_y = 0.1 * out.abs().mean()
        it = MessageHub.get_current_instance().get_info('iter')
        if it in self.nan_at:
            loss_x = loss_x * float('nan')
        return dict(loss_x=loss_x, loss_y=loss_y)


class RecordHook(Hook):
    """Copies of the weights and optimizer state around every iteration."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.before, self.after, self.momentum_before = {}, {}, {}

    @staticmethod
    def _weights(runner):
        return {
            k: v.detach().clone()
            for k, v in runner.model.state_dict().items()
        }

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.before[runner.iter] = self._weights(runner)
        state = runner.optim_wrapper.optimizer.state_dict()['state']
        self.momentum_before[runner.iter] = {
            k: v['momentum_buffer'].clone()
            for k, v in state.items() if v.get('momentum_buffer') is not None
        }

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.after[runner.iter] = self._weights(runner)


def build_runner(work_dir,
                 model,
                 max_iters=6,
                 checkpoint=None,
                 resume=False,
                 hooks=(),
                 param_scheduler=None,
                 lr=0.1,
                 **optim_kwargs):
    """An IterBased Runner (checkpoint every iteration) with a RecordHook.

    ``checkpoint`` updates the CheckpointHook config, ``hooks`` are more
    custom hooks, ``resume`` is the Runner's.
    """
    from mmengine.runner import Runner
    record = RecordHook()
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'reliability_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            type='FiniteCheckOptimWrapper',
            optimizer=dict(type='SGD', lr=lr, momentum=0.9),
            **optim_kwargs),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=1,
                by_epoch=False,
                **(checkpoint or {})),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[record, *hooks],
        param_scheduler=param_scheduler,
        resume=resume,
        default_scope='mmregion',
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    return runner, record


@pytest.fixture
def toy():
    """``ToyModel``, ``ToyDataset``, ``RecordHook`` and ``build_runner``."""
    return SimpleNamespace(
        ToyModel=ToyModel,
        ToyDataset=ToyDataset,
        RecordHook=RecordHook,
        build_runner=build_runner)
