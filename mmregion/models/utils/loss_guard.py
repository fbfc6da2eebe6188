"""Record which loss term became non-finite (``docs/reliability.md``).

:class:`NonFiniteLossGuardMixin` overrides mmengine's
``BaseModel.parse_losses``: after the usual reduction it checks every loss
term (each key containing ``'loss'``, i.e. the terms mmengine sums into the
total) with one device sync, and when one is NaN/inf it records the names
and values of all terms in the MessageHub runtime info
(``NONFINITE_LOSS_INFO_KEY``). ``FiniteCheckOptimWrapper`` then names the
culprit in its error / skip message (``loss_obj=nan at iteration 17``). The
mixin itself never changes the losses or raises.

:func:`nonfinite_terms` is the guard before a loss exists: it turns
non-finite predictions into named ``loss_nonfinite_<name>`` terms that the
same path reports.
"""
import math
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from mmengine.logging import MessageHub

__all__ = [
    'NonFiniteLossGuardMixin', 'record_nonfinite_losses',
    'get_nonfinite_loss_info', 'nonfinite_terms', 'NONFINITE_LOSS_INFO_KEY'
]

NONFINITE_LOSS_INFO_KEY = 'nonfinite_losses'


def record_nonfinite_losses(log_vars: Dict[str, torch.Tensor]) -> bool:
    """Check the loss terms of ``log_vars``; record them when one is bad.

    Args:
        log_vars (dict[str, Tensor]): The second output of
            ``BaseModel.parse_losses``: ``'loss'`` (the total) and the
            reduced (scalar) terms.

    Returns:
        bool: True when every loss term is finite. Otherwise False, and the
        MessageHub runtime info ``NONFINITE_LOSS_INFO_KEY`` holds
        ``dict(iter=<runtime iter or None>, nonfinite={name: value},
        losses={name: value})`` (plain floats, all terms) until the next
        call that finds all terms finite.
    """
    names = [k for k in log_vars if 'loss' in k and k != 'loss']
    values = [log_vars[k] for k in names]
    if not values and 'loss' in log_vars:
        names, values = ['loss'], [log_vars['loss']]
    tensors = [
        v.detach().float().reshape(-1).mean()
        if isinstance(v, torch.Tensor) else torch.tensor(float(v))
        for v in values
    ]
    hub = MessageHub.get_current_instance()
    if not tensors or bool(torch.isfinite(torch.stack(tensors)).all()):
        if hub.get_info(NONFINITE_LOSS_INFO_KEY) is not None:
            hub.pop_info(NONFINITE_LOSS_INFO_KEY)
        return True
    losses = OrderedDict((k, float(t.cpu())) for k, t in zip(names, tensors))
    nonfinite = OrderedDict(
        (k, v) for k, v in losses.items() if not math.isfinite(v))
    hub.update_info(
        NONFINITE_LOSS_INFO_KEY,
        dict(iter=hub.get_info('iter'), nonfinite=nonfinite, losses=losses),
        resumed=False)
    return False


def nonfinite_terms(**named: torch.Tensor
                    ) -> Optional[Dict[str, torch.Tensor]]:
    """Check predictions before any Hungarian matching.

    scipy's ``linear_sum_assignment`` raises ``ValueError: matrix contains
    invalid numeric entries`` on a NaN/inf cost, before any loss exists, so
    a diverged run would never reach the non-finite loss guard. Instead, the
    step returns one term ``loss_nonfinite_<name>`` per non-finite
    prediction (the sum of the tensor, NaN/inf, still in the graph):
    :class:`NonFiniteLossGuardMixin` records it and
    ``FiniteCheckOptimWrapper`` raises or skips (``on_nonfinite``) with a
    message naming it and the iteration.

    Args:
        **named (Tensor): Predictions by name.

    Returns:
        dict[str, Tensor] | None: None when all are finite (one device
        sync), else the non-finite terms.
    """
    flags = torch.stack(
        [torch.isfinite(t.detach()).all() for t in named.values()])
    if bool(flags.all()):
        return None
    return {
        f'loss_nonfinite_{name}': t.float().sum()
        for (name, t), ok in zip(named.items(), flags.tolist()) if not ok
    }


def get_nonfinite_loss_info(iteration: Optional[int] = None) -> Optional[dict]:
    """The record of :func:`record_nonfinite_losses`, if it is current.

    Args:
        iteration (int, optional): The iteration asking; a record made at
            another iteration is stale and ignored. None accepts any.

    Returns:
        dict | None: ``dict(iter, nonfinite, losses)`` or None.
    """
    info = MessageHub.get_current_instance().get_info(NONFINITE_LOSS_INFO_KEY)
    if not info:
        return None
    if iteration is not None and info.get('iter') is not None \
            and info['iter'] != iteration:
        return None
    return info


class NonFiniteLossGuardMixin:
    """Mixin for mmengine ``BaseModel`` subclasses: record non-finite losses.

    Put it first among the bases so that its ``parse_losses`` wraps the
    model's::

        class CCOP(NonFiniteLossGuardMixin, BaseMomentumSelfSupervisor):
            ...

    Losses are returned unchanged; the names and values of the terms are
    written to the MessageHub runtime info (``NONFINITE_LOSS_INFO_KEY``)
    only when one of them is not finite (see
    :func:`record_nonfinite_losses`). Use it with
    ``optim_wrapper=dict(type='FiniteCheckOptimWrapper', ...)`` to stop or
    skip the step with a message naming the term.
    """

    def parse_losses(
        self, losses: Dict[str, torch.Tensor]
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``BaseModel.parse_losses`` plus the non-finite record.

        Args:
            losses (dict): Raw outputs of the model's ``loss``: tensors or
                lists of tensors.

        Returns:
            tuple[Tensor, dict]: The total loss and the log variables, as
            mmengine returns them.
        """
        loss, log_vars = super().parse_losses(losses)  # type: ignore
        record_nonfinite_losses(log_vars)
        return loss, log_vars
