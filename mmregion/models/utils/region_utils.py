"""Batch helpers: regions, view affines, view count (``docs/design.md`` 2)."""
from typing import List, Optional, Tuple

import torch
from torch.nn.utils.rnn import pad_sequence


def stack_regions(data_samples: List,
                  num_views: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad the per-image region boxes of a batch into one tensor.

    Args:
        data_samples (list[DataSample]): B samples from
            ``PackRegionInputs``, each with ``boxes`` (V, K_b, 4).
        num_views (int): Expected number of views V. Defaults to 2.

    Returns:
        tuple[Tensor, Tensor]:

        - boxes (B, V, Kmax, 4) float: view-pixel xyxy boxes, zeros where
          padded; ``Kmax = max(1, max_b K_b)``.
        - valid (B, Kmax) bool: True for real regions.

    Raises:
        ValueError: When a sample's boxes are not (num_views, K, 4).
    """
    if len(data_samples) == 0:
        raise ValueError('stack_regions: got an empty batch.')
    all_boxes = _fields(data_samples, 'boxes', 'stack_regions')
    for b, boxes in enumerate(all_boxes):
        if boxes.dim() != 3 or boxes.shape[0] != num_views or \
                boxes.shape[2] != 4:
            raise ValueError(f'stack_regions: data_samples[{b}].boxes has '
                             f'shape {tuple(boxes.shape)}, expected '
                             f'({num_views}, K, 4).')
    device = all_boxes[0].device
    counts = torch.tensor([b.shape[1] for b in all_boxes], device=device)
    # (B, Kmax, V, 4), zero padded
    out = pad_sequence([b.transpose(0, 1).float() for b in all_boxes],
                       batch_first=True)
    if out.shape[1] == 0:
        out = out.new_zeros((len(all_boxes), 1, num_views, 4))
    out = out.permute(0, 2, 1, 3).contiguous()
    valid = torch.arange(out.shape[2], device=device)[None] < counts[:, None]
    return out, valid


def check_views(inputs, num_views: int, where: str, hint: str = '') -> None:
    """Raise unless ``inputs`` is a list/tuple of ``num_views`` view batches.

    Args:
        inputs: the ``inputs`` of an algorithm's ``loss``.
        num_views (int): expected number of views V.
        where (str): the caller, for the message (e.g. ``'PLRC.loss'``).
        hint (str): appended to the message (e.g. the pipeline to use).

    Raises:
        ValueError: ``'<where>: inputs must be a list of V view tensors (B,
        3, H, W) ...'``.
    """
    if isinstance(inputs, (list, tuple)) and len(inputs) == num_views:
        return
    got = len(inputs) if isinstance(inputs, (list, tuple)) else \
        type(inputs).__name__
    raise ValueError(f'{where}: inputs must be a list of {num_views} view '
                     f'tensors (B, 3, H, W), got {got}{hint}')


def stack_view_affine(data_samples: List) -> torch.Tensor:
    """``(B, V, 4)`` float32 ``view_affine`` of a batch.

    Raises:
        ValueError: When a sample has no ``view_affine``.
    """
    return torch.stack(
        _fields(data_samples, 'view_affine', 'stack_view_affine',
                torch.float32))


def stack_ori_shapes(
        data_samples: List,
        device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    """``(B, 2)`` float original ``(h, w)`` from the ``ori_shape`` metainfo,
    or None when a sample lacks it (a consumer that needs it says so)."""
    shapes = [s.metainfo.get('ori_shape') for s in data_samples]
    if any(hw is None for hw in shapes):
        return None
    return torch.tensor([tuple(hw[:2]) for hw in shapes],
                        dtype=torch.float32,
                        device=device)


def _fields(data_samples: List,
            name: str,
            where: str,
            dtype: Optional[torch.dtype] = None) -> List[torch.Tensor]:
    """Field ``name`` of every sample as a tensor; raise when one lacks it."""
    out = []
    for b, sample in enumerate(data_samples):
        value = getattr(sample, name, None)
        if value is None:
            raise ValueError(f'{where}: data_samples[{b}] has no '
                             f'"{name}" field (use PackRegionInputs).')
        out.append(torch.as_tensor(value, dtype=dtype))
    return out


def select_regions(
        boxes: torch.Tensor, valid: torch.Tensor,
        max_regions: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keep at most ``max_regions`` random valid regions per image.

    Args:
        boxes (torch.Tensor): ``(B, V, K, 4)``.
        valid (torch.Tensor): ``(B, K)`` bool.
        max_regions (int, optional): None keeps all.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(B, V, K', 4)`` and ``(B, K')``.
    """
    K = valid.size(1)
    if max_regions is None or K <= max_regions:
        return boxes, valid
    score = torch.rand(valid.shape, device=valid.device) + valid.float()
    idx = score.topk(max_regions, dim=1).indices  # (B, K')
    valid = valid.gather(1, idx)
    boxes = boxes.gather(
        2, idx[:, None, :, None].expand(-1, boxes.size(1), -1, 4))
    return boxes, valid
