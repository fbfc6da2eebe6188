from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmregion.registry import HOOKS


@HOOKS.register_module()
class PLRCTeacherTempHook(Hook):
    """Feeds the training progress to PLRC's distillation loss.

    Before every training iteration it writes the progress in (fractional)
    epochs, ``iter / iters_per_epoch``, to ``model.<loss_name>.progress``
(``loss_name`` may be a dotted path);
    :class:`PointAffinityDistillationLoss` turns it into the warmed-up
    teacher temperature (0.04 -> 0.07 over 30 epochs in the official code,
    where the schedule steps once per epoch; here it is linear per
    iteration). The schedule itself stays in the loss config.

    Args:
        loss_name (str): attribute path of the model holding the loss.
            Defaults to 'head.loss_distill_module' (:class:`PLRCHead`).
        iters_per_epoch (int, optional): for iteration-based loops; by
            default ``len(runner.train_dataloader)``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 loss_name: str = 'head.loss_distill_module',
                 iters_per_epoch: Optional[int] = None) -> None:
        self.loss_name = loss_name
        self.iters_per_epoch = iters_per_epoch

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        loss = model
        for name in self.loss_name.split('.'):
            loss = getattr(loss, name, None)
        if loss is None or not hasattr(loss, 'progress'):
            raise AttributeError(
                f'PLRCTeacherTempHook: the model has no `{self.loss_name}` '
                'with a `progress` attribute (a PointAffinityDistillationLoss)'
            )
        per_epoch = self.iters_per_epoch or len(runner.train_dataloader)
        loss.progress = runner.iter / max(per_epoch, 1)
