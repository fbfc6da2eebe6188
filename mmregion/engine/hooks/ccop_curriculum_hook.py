"""Drive CCOP's spatial-noise curriculum from the training progress."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmregion.registry import HOOKS

__all__ = ['CCOPCurriculumHook']


@HOOKS.register_module()
class CCOPCurriculumHook(Hook):
    """Set the curriculum ``progress = iter / max_iters`` before each
    training iteration and log the current difficulty.

    The model must own a :class:`CurriculumBoxJitter` (attribute
    ``jitter_attr``; :class:`CCOP` has ``box_jitter``). Every iteration the
    hook writes ``curriculum/progress``, ``curriculum/iou_thr``,
    ``curriculum/mag_xy`` and ``curriculum/mag_wh`` to the message hub
    (under ``train/``, so the logger prints them at every log interval and
    they land in ``scalars.json``). The state is saved in
    ``checkpoint['meta']['curriculum']`` (and in the model buffer
    ``box_jitter.progress``); after loading, the progress is restored, and
    the next iteration recomputes it from the resumed ``runner.iter``, so a
    resumed run continues the schedule where it stopped.

    Args:
        jitter_attr (str): Name of the jitter module on the model.
            Defaults to 'box_jitter'.
    """

    priority = 'NORMAL'

    def __init__(self, jitter_attr: str = 'box_jitter') -> None:
        self.jitter_attr = jitter_attr

    def _jitter(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        jitter = getattr(model, self.jitter_attr, None)
        if jitter is None or not hasattr(jitter, 'set_progress'):
            raise AttributeError(
                f'CCOPCurriculumHook: the model ({type(model).__name__}) has '
                f'no curriculum jitter "{self.jitter_attr}" with '
                '`set_progress` (remove the hook from `custom_hooks` or set '
                '`jitter_attr`).')
        return jitter

    def before_train(self, runner) -> None:
        self._jitter(runner)  # fail early with a clear message

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        jitter = self._jitter(runner)
        jitter.set_progress(runner.iter / max(runner.max_iters, 1))
        for key, value in jitter.current().items():
            runner.message_hub.update_scalar(f'train/curriculum/{key}', value)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['curriculum'] = \
            self._jitter(runner).current()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('curriculum')
        if state is not None and 'progress' in state:
            self._jitter(runner).set_progress(state['progress'])
