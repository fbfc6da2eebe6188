"""The collate function of mmregion's pre-training dataloaders."""
from typing import Any, Optional, Sequence

from mmengine.dataset import default_collate

from mmregion.registry import FUNCTIONS


@FUNCTIONS.register_module()
def region_collate(data_batch: Sequence[Any],
                   _scope_: Optional[str] = None) -> Any:
    """mmengine's ``default_collate`` (the views are stacked).

    A config that inherits from an installed package
    (``_base_ = 'mmregion::mmregion/ccop_r18_toy.py'``) gets
    ``_scope_='mmregion'`` in every dict with a ``type``, and mmengine's
    ``Runner.build_dataloader`` passes the keys of ``collate_fn`` on to the
    function, so ``default_collate`` itself would fail at the first batch
    with ``unexpected keyword argument '_scope_'`` (open-mmlab/mmyolo#886).
    This function takes that key and ignores it.

    Args:
        data_batch (Sequence): The samples of one batch, each a dict with
            ``inputs`` (a list of V views, each a (3, H, W) uint8 tensor of
            the same size) and ``data_samples``.
        _scope_ (str, optional): The registry scope mmengine adds; unused.

    Returns:
        The batch: ``inputs`` a list of V (B, 3, H, W) tensors and
        ``data_samples`` a list of B samples.
    """
    return default_collate(data_batch)
