"""Stop or skip a training step whose loss is not finite.

See ``docs/reliability.md``. The check runs before ``backward``, so a NaN/inf
loss never reaches the gradients, the optimizer state or the weights.
"""
import logging
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_rank, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmregion.registry import OPTIM_WRAPPERS

__all__ = ['FiniteCheckOptimWrapper', 'FiniteCheckAmpOptimWrapper']

_ACTIONS = ('raise', 'skip')


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
        if not self.loss_is_finite(loss):
            self._on_nonfinite_loss(loss, zero_kwargs)
            return
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

    def _on_nonfinite_loss(self, loss: torch.Tensor,
                           zero_kwargs: Dict) -> None:
        message = self.describe_nonfinite_loss(loss)
        if self.on_nonfinite == 'raise':
            raise FloatingPointError(
                f'{message}. Training stopped before backward: the weights '
                'and optimizer state are those of the previous step (resume '
                'from the last checkpoint). Set optim_wrapper.on_nonfinite='
                '"skip" to skip such steps instead.')
        self.num_consecutive_skips += 1
        self.num_skipped += 1
        if (self.max_skips is not None
                and self.num_consecutive_skips > self.max_skips):
            raise FloatingPointError(
                f'{message}. {self.num_consecutive_skips} consecutive '
                f'non-finite losses (max_skips={self.max_skips}): training '
                'stopped; the weights are those of the last finite step.')
        # no backward; keep the accumulation count aligned with runner.iter
        self._inner_count += 1
        self.zero_grad(**zero_kwargs)
        self._discard_window = not self.should_update()
        window = (', accumulation window discarded'
                  if self._discard_window else '')
        print_log(
            f'{message}: step skipped (no backward, no optimizer step'
            f'{window}; {self.num_consecutive_skips} consecutive, '
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
        from mmregion.models.utils.loss_guard import get_nonfinite_loss_info
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
                f'max_skips: {self.max_skips}\n)')


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
