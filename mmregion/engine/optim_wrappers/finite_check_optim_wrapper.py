"""Stop or skip a training step whose loss is not finite.

See ``docs/reliability.md``. The check runs before ``backward``, so a NaN/inf
loss never reaches the gradients, the optimizer state or the weights. With
``on_nonfinite='skip'`` the state that the forward pass itself changed
(BatchNorm statistics, feature queues, momentum encoders / EMA teachers: every
buffer and every parameter without ``requires_grad``) is restored too, so a
skipped step changes no state at all.
"""
import logging
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_rank, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmregion.models.utils.loss_guard import get_nonfinite_loss_info
from mmregion.registry import OPTIM_WRAPPERS

__all__ = ['FiniteCheckOptimWrapper', 'FiniteCheckAmpOptimWrapper']

_ACTIONS = ('raise', 'skip')

# (module, '_buffers' | '_parameters', name, copy taken before the forward)
_Entry = Tuple[nn.Module, str, str, torch.Tensor]
_Snapshot = List[_Entry]


def _forward_state(model: nn.Module) -> Iterator[_Entry]:
    for module in model.modules():
        for name, buf in module._buffers.items():
            if buf is not None:
                yield module, '_buffers', name, buf
        for name, param in module._parameters.items():
            if param is not None and not param.requires_grad:
                yield module, '_parameters', name, param


def snapshot_forward_state(model: nn.Module) -> _Snapshot:
    """Copy what a forward pass may change: buffers and frozen parameters.

    Buffers hold BatchNorm statistics, feature queues and their pointers,
    EMA step counters; parameters without ``requires_grad`` hold momentum
    encoders and EMA teachers. Trainable parameters are left out: only the
    optimizer step changes them.

    Args:
        model (nn.Module): The model (or its wrapper).

    Returns:
        list: ``(module, kind, name, copy)`` for :func:`restore_forward_state`.
    """
    with torch.no_grad():
        return [(module, kind, name, tensor.detach().clone())
                for module, kind, name, tensor in _forward_state(model)]


def restore_forward_state(snap: _Snapshot) -> None:
    """Put back the tensors of :func:`snapshot_forward_state`, in place.

    A tensor that the forward pass replaced by one of another shape, dtype
    or device is replaced back by the copy.

    Args:
        snap (list): What :func:`snapshot_forward_state` returned.
    """
    with torch.no_grad():
        for module, kind, name, saved in snap:
            table = getattr(module, kind)
            current = table.get(name)
            if (current is not None and current.shape == saved.shape
                    and current.dtype == saved.dtype
                    and current.device == saved.device):
                current.copy_(saved)
            elif kind == '_buffers':
                table[name] = saved
            else:
                table[name] = nn.Parameter(saved, requires_grad=False)


def forward_state_nbytes(model: nn.Module) -> int:
    """Bytes that :func:`snapshot_forward_state` copies for ``model``."""
    return sum(t.numel() * t.element_size()
               for _, _, _, t in _forward_state(model))


class _FiniteCheckMixin:
    """The finite-loss check, shared by the plain and the AMP wrapper.

    Must precede an ``OptimWrapper`` subclass in the bases; it only
    overrides :meth:`update_params`, so the parent's ``backward``/``step``
    (gradient scaling of AMP, gradient clipping) and ``optim_context``
    (autocast, ``no_sync`` during accumulation) are used as they are.
    """

    def __init__(self,
                 *args,
                 on_nonfinite: str = 'raise',
                 max_skips: Optional[int] = 10,
                 restore_state_on_skip: bool = True,
                 **kwargs) -> None:
        if on_nonfinite not in _ACTIONS:
            raise ValueError(f'{type(self).__name__}: on_nonfinite must be '
                             f'one of {_ACTIONS}, got "{on_nonfinite}".')
        if max_skips is not None and max_skips < 0:
            raise ValueError(f'{type(self).__name__}: max_skips must be >= 0 '
                             f'or None, got {max_skips}.')
        super().__init__(*args, **kwargs)
        self.on_nonfinite = on_nonfinite
        self.max_skips = max_skips
        self.num_skipped = 0
        self.num_consecutive_skips = 0
        self._discard_window = False
        self.restore_state_on_skip = restore_state_on_skip
        self._state_snapshot: Optional[_Snapshot] = None

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The parent's context; with ``'skip'`` also a snapshot of the state.

        ``BaseModel.train_step`` runs the forward pass inside this context,
        so the snapshot is the state before the forward. It is restored when
        the loss turns out non-finite (:meth:`update_params`) and dropped
        otherwise.
        """
        self._state_snapshot = None
        if self.on_nonfinite == 'skip' and self.restore_state_on_skip:
            self._state_snapshot = snapshot_forward_state(model)
        with super().optim_context(model):  # type: ignore
            yield

    def loss_is_finite(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` is finite (on every rank when distributed).

        In distributed training the flag is all-reduced, so all ranks take
        the same decision (a rank that skipped ``backward`` alone would
        leave the others waiting in the gradient all-reduce).

        Args:
            loss (Tensor): The total loss (any shape).

        Returns:
            bool: True when every element is finite on every rank.
        """
        bad = (~torch.isfinite(loss.detach())).any()
        if is_distributed():
            flag = bad.to(torch.float32).reshape(1)
            all_reduce(flag, op='sum')
            return bool(flag.item() == 0)
        return not bool(bad)

    def update_params(  # type: ignore
            self,
            loss: torch.Tensor,
            step_kwargs: Optional[Dict] = None,
            zero_kwargs: Optional[Dict] = None) -> None:
        """``OptimWrapper.update_params`` guarded against non-finite losses.

        A finite loss: ``scale_loss`` -> ``backward`` -> ``step`` +
        ``zero_grad`` when the accumulation window is complete, as in
        mmengine. A non-finite loss: ``on_nonfinite='raise'`` raises
        ``FloatingPointError``; ``'skip'`` makes no backward and no
        optimizer step, zeroes the gradients and discards the whole
        accumulation window it belongs to (its other micro-batches still run
        ``backward`` so that distributed ranks stay in step; the window ends
        with ``zero_grad`` instead of ``step``). The accumulation counter
        still advances, so the windows stay aligned with ``runner.iter``.

        Args:
            loss (Tensor): The total loss.
            step_kwargs (dict, optional): For ``optimizer.step``.
            zero_kwargs (dict, optional): For ``optimizer.zero_grad``.

        Raises:
            FloatingPointError: The loss is not finite and
                ``on_nonfinite='raise'``, or more than ``max_skips``
                consecutive losses were not finite. The message names the
                iteration and the non-finite loss terms.
        """
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        snapshot, self._state_snapshot = self._state_snapshot, None
        if not self.loss_is_finite(loss):
            self._on_nonfinite_loss(loss, zero_kwargs, snapshot)
            return
        del snapshot  # free it before backward
        self.num_consecutive_skips = 0
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            if self._discard_window:
                self._discard_window = False
                self.zero_grad(**zero_kwargs)
            else:
                self.step(**step_kwargs)
                self.zero_grad(**zero_kwargs)

    def _on_nonfinite_loss(self,
                           loss: torch.Tensor,
                           zero_kwargs: Dict,
                           snapshot: Optional[_Snapshot] = None) -> None:
        message = self.describe_nonfinite_loss(loss)
        if self.on_nonfinite == 'raise':
            last = MessageHub.get_current_instance().get_info('last_ckpt')
            last = f' {last}' if last else ''
            raise FloatingPointError(
                f'{message}. Training stopped before backward: the weights '
                'and optimizer state are those of the previous step. Resume '
                f'from the last checkpoint{last} with a lower learning rate: '
                'tools/train.py CONFIG --resume --cfg-options '
                'optim_wrapper.optimizer.lr=LOWER (the config\'s lr replaces '
                'the checkpoint\'s), or set optim_wrapper.on_nonfinite='
                '"skip" to skip such steps.')
        self.num_consecutive_skips += 1
        self.num_skipped += 1
        if (self.max_skips is not None
                and self.num_consecutive_skips > self.max_skips):
            raise FloatingPointError(
                f'{message}. {self.num_consecutive_skips} consecutive '
                f'non-finite losses (max_skips={self.max_skips}): training '
                'stopped; the weights are those of the last finite step.')
        # undo what the forward pass changed (BN statistics, queues,
        # momentum encoders); no backward; keep the accumulation count
        # aligned with runner.iter
        if snapshot is not None:
            restore_forward_state(snapshot)
        self._inner_count += 1
        self.zero_grad(**zero_kwargs)
        self._discard_window = not self.should_update()
        window = (', accumulation window discarded'
                  if self._discard_window else '')
        restored = ('buffers and frozen parameters restored'
                    if snapshot is not None else 'buffers not restored')
        print_log(
            f'{message}: step skipped (no backward, no optimizer step'
            f'{window}, {restored}; {self.num_consecutive_skips} consecutive, '
            f'{self.num_skipped} in total, max_skips={self.max_skips}).',
            logger='current',
            level=logging.WARNING)

    def describe_nonfinite_loss(self, loss: torch.Tensor) -> str:
        """``'loss_x=nan at iteration 18 (runner.iter=17)'``-like text.

        The loss terms come from ``NonFiniteLossGuardMixin``'s record when
        the model has it; otherwise only the total is known.

        Args:
            loss (Tensor): The total loss.

        Returns:
            str: The message (no final period).
        """
        it = MessageHub.get_current_instance().get_info('iter')
        if it is None:
            where = f'at update {self._inner_count + 1} of this optim wrapper'
        else:
            where = f'at iteration {it + 1} (runner.iter={it})'
        total = loss.detach().float()
        total = total.item() if total.numel() == 1 else total.tolist()
        info = get_nonfinite_loss_info(it)
        if info and info['nonfinite']:
            bad = ', '.join(f'{k}={v}' for k, v in info['nonfinite'].items())
            terms = ', '.join(f'{k}={v:.6g}'
                              for k, v in info['losses'].items())
            text = (f'Non-finite loss: {bad} {where} (loss terms: {terms}; '
                    f'total loss={total})')
        elif is_distributed() and bool(torch.isfinite(loss.detach()).all()):
            text = (f'Non-finite loss on another rank {where} (rank '
                    f'{get_rank()} has loss={total})')
        else:
            text = (f'Non-finite loss: loss={total} {where} (give the model '
                    'NonFiniteLossGuardMixin to name the loss term)')
        return text

    def __repr__(self) -> str:
        return (super().__repr__().rstrip(')') +
                f'on_nonfinite: {self.on_nonfinite}\n'
                f'max_skips: {self.max_skips}\n'
                f'restore_state_on_skip: {self.restore_state_on_skip}\n)')


@OPTIM_WRAPPERS.register_module()
class FiniteCheckOptimWrapper(_FiniteCheckMixin, OptimWrapper):
    """``OptimWrapper`` that stops or skips a step whose loss is not finite.

    The check runs before ``backward`` (one device sync per step; an
    all-reduce of one flag in distributed training). Gradient accumulation
    (``accumulative_counts``) and gradient clipping work as in
    ``OptimWrapper``. Pair the model with ``NonFiniteLossGuardMixin`` so
    that the message names the loss term (``loss_obj=nan at iteration 17``).

    Example:
        >>> optim_wrapper = dict(
        ...     type='FiniteCheckOptimWrapper',
        ...     optimizer=dict(type='SGD', lr=0.03, momentum=0.9),
        ...     on_nonfinite='skip', max_skips=10)

    Args:
        optimizer (Optimizer): As in ``OptimWrapper``.
        on_nonfinite (str): ``'raise'`` (``FloatingPointError`` naming the
            iteration and the loss terms) or ``'skip'`` (no backward, no
            optimizer step, gradients zeroed, the accumulation window
            discarded; counted in ``num_skipped`` and logged).
            Defaults to ``'raise'``.
        max_skips (int, optional): With ``'skip'``: raise when more than this
            many consecutive steps had a non-finite loss. None: never.
            Defaults to 10.
        restore_state_on_skip (bool): With ``'skip'``: copy every buffer and
            frozen parameter before each forward pass and put them back when
            the step is skipped, so that a skipped step leaves BN statistics,
            queues and momentum encoders / EMA teachers untouched. Costs one
            copy of those tensors per step (device memory and bandwidth; see
            ``docs/reliability.md``). Defaults to True.
        **kwargs: ``accumulative_counts``, ``clip_grad`` of ``OptimWrapper``.
    """


@OPTIM_WRAPPERS.register_module()
class FiniteCheckAmpOptimWrapper(_FiniteCheckMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` with the finite-loss check of
    :class:`FiniteCheckOptimWrapper` (same ``on_nonfinite``/``max_skips``).

    The check sees the unscaled loss. Non-finite *gradients* of a finite
    loss stay the business of the ``GradScaler`` (it skips that step and
    lowers the scale), as in mmengine.
    """
