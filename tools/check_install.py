"""Verify that the mmregion stack is installed and usable.

Prints one line per check and exits with status 1 (listing every failure)
when anything is missing. Used by ``tools/install.sh`` and the tests.
"""
import importlib
import sys
from typing import Callable, List, Tuple


def _torchvision():
    import torchvision
    import torchvision.transforms.functional  # noqa: F401  (mmpretrain)
    return torchvision.__version__


def _mmcv_ops():
    import mmcv
    import torch
    from mmcv.ops import RoIAlign
    feat = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 3., 3.]])
    out = RoIAlign((2, 2), 1.0, 0, aligned=True)(feat, rois)
    assert out.shape == (1, 1, 2, 2), out.shape
    return f'{mmcv.__version__} (ops OK: RoIAlign ran)'


def _version_of(name: str) -> Callable[[], str]:

    def check():
        return importlib.import_module(name).__version__

    return check


def _ximgproc():
    import cv2
    cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    return f'{cv2.__version__} (cv2.ximgproc OK)'


def _test_image():
    """A 64x64 BGR image with edges and colours (a real image's content)."""
    import numpy as np
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = (xx * 4) % 256
    img[..., 1] = (yy * 4) % 256
    img[16:48, 16:48, 2] = 255  # a square: selective search finds a region
    return img


def _colour_jitter():
    """mmcv's hue shift by a negative amount (numpy 2 breaks it, #20)."""
    import numpy as np
    from mmcv.image import adjust_hue
    img = _test_image()
    out = adjust_hue(img, -0.1)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img), 'the hue did not change'
    return 'adjust_hue(-0.1) OK'


def _selective_search():
    from mmregion.proposals.sources import selective_search
    boxes = selective_search(_test_image(), mode='single', min_size=4.)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes), boxes
    return f'{len(boxes)} boxes on a 64x64 image'


def _mmregion():
    import mmregion
    from mmregion.dependency import find_dependency_problems
    problems = find_dependency_problems()
    if problems:
        raise RuntimeError('; '.join(problems))
    return mmregion.__version__


CHECKS: List[Tuple[str, Callable[[], str]]] = [
    ('torch', _version_of('torch')),
    ('torchvision', _torchvision),
    ('numpy', _version_of('numpy')),
    ('mmengine', _version_of('mmengine')),
    ('mmcv', _mmcv_ops),
    ('mmdet', _version_of('mmdet')),
    ('mmpretrain', _version_of('mmpretrain')),
    ('opencv', _ximgproc),
    ('pycocotools', lambda:
     (importlib.import_module('pycocotools.coco'), 'OK')[1]),
    ('scipy', _version_of('scipy')),
    ('mmregion', _mmregion),
    ('colour jit.', _colour_jitter),
    ('sel. search', _selective_search),
]


def run_checks() -> List[str]:
    """Run all checks, print them, return the failure lines."""
    failures = []
    for name, check in CHECKS:
        try:
            print(f'  {name:<12} {check()}')
        except Exception as e:  # noqa: BLE001 - report everything
            first = str(e).strip().splitlines()[0] if str(e).strip() else ''
            line = f'{name}: {type(e).__name__}: {first}'
            print(f'  {name:<12} FAILED ({line})')
            failures.append(line)
    return failures


def main() -> int:
    failures = run_checks()
    if failures:
        print(
            'mmregion install check FAILED:\n  - ' + '\n  - '.join(failures) +
            '\nRe-run `bash tools/install.sh`.',
            file=sys.stderr)
        return 1
    print('mmregion install check passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
