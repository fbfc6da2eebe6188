"""Let the config's learning rate win over the resumed one (``--resume``).

mmengine's ``resume`` restores the optimizer's param groups (``lr``,
``initial_lr``) and the parameter schedulers' ``base_values`` from the
checkpoint, so changing ``optim_wrapper.optimizer.lr`` (in the config or with
``--cfg-options``) had no effect on a resumed run: the run that stopped on a
NaN loss resumed with the learning rate that caused it. This hook compares
the base learning rate of every param group as built from the config
(before the checkpoint is loaded) with the resumed one and, where they
differ, rescales the resumed ``lr``, ``initial_lr`` and the lr schedulers'
``base_values`` by ``config / checkpoint``, so the schedule continues from
the same point with the config's base. Every override is logged. A resume
with an unchanged config changes nothing (bit-identical resume).
"""
from typing import Dict, List, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmregion.registry import HOOKS


def _optimizers(optim_wrapper) -> List[Tuple[str, object]]:
    """``(name, optim wrapper or optimizer)`` pairs of the runner."""
    if optim_wrapper is None:
        return []
    inner = getattr(optim_wrapper, 'optim_wrappers', None)
    if isinstance(inner, dict):  # OptimWrapperDict
        return sorted(inner.items())
    return [('', optim_wrapper)]


def _schedulers(param_schedulers) -> list:
    if param_schedulers is None:
        return []
    if isinstance(param_schedulers, dict):
        return [s for v in param_schedulers.values() for s in (v or [])]
    return list(param_schedulers)


def _base_lr(group: dict) -> float:
    return float(group.get('initial_lr', group['lr']))


@HOOKS.register_module()
class ResumeLrHook(Hook):
    """Apply the config's learning rate to a resumed optimizer (logged).

    ``tools/train.py --resume`` adds it, so ``--resume --cfg-options
    optim_wrapper.optimizer.lr=0.001`` resumes with a base lr of 0.001 (the
    scheduler continues from the checkpoint's iteration). Other configs add
    ``dict(type='mmregion.ResumeLrHook')`` to ``custom_hooks``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._config_lrs: Dict[str, List[float]] = {}

    def before_run(self, runner) -> None:
        """Record the base lr of every group as built from the config
        (``before_run`` comes before the checkpoint is loaded)."""
        self._config_lrs = {
            name: [_base_lr(g) for g in opt.param_groups]
            for name, opt in _optimizers(
                getattr(runner, 'optim_wrapper', None))
        }

    def before_train(self, runner) -> None:
        """After ``resume``: rescale where the checkpoint's lr differs."""
        schedulers = _schedulers(getattr(runner, 'param_schedulers', None))
        for name, opt in _optimizers(getattr(runner, 'optim_wrapper', None)):
            wanted = self._config_lrs.get(name)
            groups = opt.param_groups
            if not wanted or len(wanted) != len(groups):
                continue
            factors = []
            for group, lr in zip(groups, wanted):
                old = _base_lr(group)
                factors.append(lr / old if old not in (0.0, lr) else None)
            if all(f is None for f in factors):
                continue
            before = [g['lr'] for g in groups]
            for group, lr, f in zip(groups, wanted, factors):
                if f is None:
                    continue
                group['lr'] *= f
                if 'initial_lr' in group:
                    group['initial_lr'] = lr
            for sched in schedulers:
                if getattr(sched, 'param_name', None) != 'lr' or \
                        sched.optimizer.param_groups is not groups:
                    continue
                for attr in ('base_values', '_last_value'):
                    values = getattr(sched, attr, None)
                    if isinstance(values, list) and \
                            len(values) == len(factors):
                        setattr(sched, attr, [
                            v if f is None else v * f
                            for v, f in zip(values, factors)
                        ])
            where = f' of optimizer "{name}"' if name else ''
            print_log(
                f'Resume: the config sets another learning rate than the '
                f'checkpoint{where}: base lr {_show(wanted)} (config) '
                f'replaces the resumed one; current lr {_show(before)} -> '
                f'{_show([g["lr"] for g in groups])} (the schedule continues '
                'from the resumed iteration).',
                logger='current',
                level=30)


def _show(values: List[float]) -> str:
    shown = sorted(set(f'{v:.4g}' for v in values))
    return shown[0] if len(shown) == 1 else '[' + ', '.join(shown) + ']'
