"""--cfg-options (new keys, typos, variables, --strict-cfg-options) and the
dataloader switches of tools/train.py; --show-dir / --tta of tools/test.py."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from tool_utils import load_tool

from mmregion.apis.cli import apply_cfg_options, check_cfg_options
from mmregion.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_load_tool = load_tool


def test_new_key_warns_and_is_added(capsys):
    cfg = Config(
        dict(
            optim_wrapper=dict(optimizer=dict(lr=0.1)),
            model=dict(norm_cfg=dict(type='BN'))))
    args = _load_tool('train').parse_args([
        'cfg.py', '--cfg-options', 'new_key=3', 'optim_wrapper.clip=1',
        'model.init_cfg=None'
    ])
    apply_cfg_options(cfg, args)
    out = capsys.readouterr()
    text = out.out + out.err
    assert 'new_key' in text and '--strict-cfg-options' in text
    # added, as mmengine does
    assert cfg.new_key == 3 and cfg.optim_wrapper.clip == 1
    assert 'init_cfg' in cfg.model  # close to norm_cfg, but not a typo


def test_typo_in_cfg_options_is_an_error():
    """A key close to an existing one is a typo: refused before anything is
    built (it used to warn, then fail ~450 lines later in a module's
    constructor, or train silently with the default)."""
    cfg = Config(
        dict(
            optim_wrapper=dict(optimizer=dict(lr=0.1)),
            model=dict(backbone=dict(type='ResNet', depth=18))))
    for key, hint in (('optim_wraper.optimizer.lr=0.2', 'optim_wrapper'),
                      ('model.backbone.dept=50', 'depth')):
        args = _load_tool('train').parse_args(['cfg.py', '--cfg-options', key])
        with pytest.raises(UserError, match=f'did you mean {hint}'):
            apply_cfg_options(cfg, args)
    assert 'optim_wraper' not in cfg and 'dept' not in cfg.model.backbone


def test_top_level_variable_in_cfg_options_is_an_error():
    """``data_root`` was copied into the dataloader when the file was read:
    setting it would silently train on the old data."""
    cfg = Config.fromstring(
        "data_root = 'data/coco/'\n"
        'train_dataloader = dict(dataset=dict(data_root=data_root, '
        "ann_file=data_root + 'a.json'))\n"
        'unused = 3\n', '.py')
    args = _load_tool('train').parse_args(
        ['cfg.py', '--cfg-options', 'data_root=data/mine/'])
    with pytest.raises(UserError) as e:
        apply_cfg_options(cfg, args)
    msg = str(e.value)
    assert 'train_dataloader.dataset.data_root' in msg
    assert 'train_dataloader.dataset.ann_file' in msg
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    # a variable used nowhere else, or a key the runner reads, is set
    args = _load_tool('train').parse_args(
        ['cfg.py', '--cfg-options', 'unused=4', 'load_from=x.pth'])
    apply_cfg_options(cfg, args)
    assert cfg.unused == 4 and cfg.load_from == 'x.pth'


def test_strict_cfg_options_refuses_unknown_key():
    cfg = Config(dict(a=dict(b=1)))
    args = _load_tool('test').parse_args([
        'cfg.py', 'ckpt.pth', '--cfg-options', 'a.c=2', '--strict-cfg-options'
    ])
    with pytest.raises(UserError, match='no "c" under a'):
        apply_cfg_options(cfg, args)
    assert 'c' not in cfg.a
    # lenient mode returns the warning instead of raising
    lines = check_cfg_options(cfg, {'a.c': 2}, strict=False)
    assert len(lines) == 1 and 'did you mean' not in lines[0]


def test_no_pin_memory_no_persistent_workers():
    train = _load_tool('train')
    loader = dict(num_workers=2, pin_memory=True, persistent_workers=True)
    cfg = Config(
        dict(
            train_dataloader=dict(loader),
            val_dataloader=dict(loader),
            test_dataloader=None,
            work_dir='w'))
    args = train.parse_args(
        ['cfg.py', '--no-pin-memory', '--no-persistent-workers'])
    cfg = train.merge_args(cfg, args)
    for name in ('train_dataloader', 'val_dataloader'):
        assert cfg[name].pin_memory is False
        assert cfg[name].persistent_workers is False
    args = train.parse_args(['cfg.py'])
    cfg = Config(dict(train_dataloader=dict(loader), work_dir='w'))
    assert train.merge_args(cfg, args).train_dataloader.pin_memory is True


def _random_detector_checkpoint(config, path):
    import torch
    from mmengine.registry import init_default_scope

    from mmregion.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)


@pytest.mark.slow
def test_test_py_show_dir_and_tta(toy_coco, tmp_path):
    """tools/test.py --show-dir draws every test image; --tta wraps the
    model in DetTTAModel with a flip pipeline and still evaluates."""
    config = osp.join(ROOT, 'configs', 'benchmarks',
                      'deformable-detr_r18_toy.py')
    ckpt = tmp_path / 'det.pth'
    _random_detector_checkpoint(config, ckpt)
    root = f'{toy_coco}/'
    work = tmp_path / 'work'
    # a fresh process, as a user runs it: in-process, visualizer instances
    # left by earlier tests of the session (mmengine's ManagerMixin) can be
    # picked up by DetVisualizationHook
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), config,
        str(ckpt), '--work-dir',
        str(work), '--show-dir', 'vis', '--wait-time', '0.1', '--tta',
        '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        f'test_evaluator.ann_file={root}annotations/instances_val.json',
        'model.backbone.init_cfg=None'
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'tta_model' in log and 'tta_pipeline' in log  # default TTA
    assert 'bbox_mAP' in log
    pngs = [
        f for _, _, fs in os.walk(work) for f in fs
        if f.endswith('.jpg') or f.endswith('.png')
    ]
    assert len(pngs) == 4, pngs  # one drawn image per val image


def test_tta_refuses_mask_models_clearly():
    test = _load_tool('test')
    cfg = Config(
        dict(
            model=dict(type='MaskRCNN', roi_head=dict(mask_head=dict())),
            test_dataloader=dict(dataset=dict(pipeline=[]))))
    with pytest.raises(UserError, match='refuses instance masks'):
        test.enable_tta(cfg)
