"""tools/model_converters/{ccop,plrc,detreg}_to_mmregion.py round trips.

Each test builds one of our toy models, renames its state dict to the key
layout of the official release (written here from the official model code:
ChenhongyiYang/CCOP ``openselfsup/models/ccop.py`` + Detectron2 ResNet/FPN,
facebookresearch/PLRC ``PLRC/models/{builder,resnet,plrc_loss}.py``,
amirbar/DETReg ``models/{backbone,deformable_detr,
deformable_transformer}.py``),
adds the official-only entries and one unknown key, runs the converter and
checks that every backbone key lands with its value (a strict load into
mmdet/mmpretrain's ResNet: 0 missing keys) and that the full algorithm state
dict loads with only the documented gaps.
"""
import argparse
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tool_utils import load_tool

from mmregion.registry import MODELS
from mmregion.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs', 'mmregion')


def _load_tool(name):
    return load_tool(f'model_converters/{name}')


# thin ResNet-18s (base width 16): small files, fast tests
THIN = dict(
    ccop={
        'model.backbone.base_channels': 16,
        'model.neck.in_channels': [16, 32, 64, 128],
        'model.img_neck.in_channels': 128
    },
    plrc={
        'model.backbone.base_channels': 16,
        'model.point_neck.in_channels': 128,
        'model.dino_neck.in_channels': 128
    },
    detreg={
        'model.detector.backbone.base_channels': 16,
        'model.detector.neck.in_channels': [32, 64, 128]
    })


def _build(config, **overrides):
    cfg = Config.fromfile(osp.join(CFG, config))
    cfg.merge_from_dict(overrides)
    init_default_scope('mmregion')
    model = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # distinctive values for every entry
        for t in model.state_dict().values():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g))
    return model


def _rename(state, rules, drop=()):
    """Our names -> official names; every key must match a rule."""
    out = {}
    for key, value in state.items():
        if any(re.match(d, key) for d in drop):
            continue
        for pattern, repl, *fn in rules:
            m = re.fullmatch(pattern, key)
            if m:
                new = repl(m) if callable(repl) else m.expand(repl)
                out[new] = fn[0](value) if fn else value
                break
        else:
            raise AssertionError(f'test bug: no official name for {key}')
    return out


def _run(tool, src, out, target, capsys):
    tool.main([str(src), str(out), '--target', target])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    ckpt = torch.load(out, weights_only=True)
    return ckpt['state_dict'], line


def _strict_backbone_load(backbone, state):
    result = backbone.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, state[k]), k


def _check_algorithm(model, state, allowed_missing=()):
    result = model.load_state_dict(state, strict=False)
    missing = [
        k for k in result.missing_keys
        if not any(re.match(a, k) for a in allowed_missing)
    ]
    assert missing == [] and result.unexpected_keys == []


# ---- CCOP -----------------------------------------------------------------
def _d2_resnet(ours, d2):
    return [
        (ours + r'conv1\.weight', d2 + 'stem.conv1.weight'),
        (ours + r'bn1\.(\w+)', d2 + r'stem.conv1.norm.\1'),
        (ours + r'layer(\d)\.(\d+)\.conv(\d)\.weight', lambda m:
         f'{d2}res{int(m.group(1)) + 1}.{m.group(2)}.conv{m.group(3)}.weight'),
        (ours + r'layer(\d)\.(\d+)\.bn(\d)\.(\w+)', lambda m:
         f'{d2}res{int(m.group(1)) + 1}.{m.group(2)}.conv{m.group(3)}.norm.'
         f'{m.group(4)}'),
        (ours + r'layer(\d)\.(\d+)\.downsample\.0\.weight',
         lambda m: f'{d2}res{int(m.group(1)) + 1}.{m.group(2)}.shortcut.weight'
         ),
        (ours + r'layer(\d)\.(\d+)\.downsample\.1\.(\w+)',
         lambda m: f'{d2}res{int(m.group(1)) + 1}.{m.group(2)}.shortcut.norm.'
         f'{m.group(3)}'),
    ]


def _d2_fpn(ours, d2):
    rules = []
    for mine, theirs in (('lateral_convs', 'fpn_lateral'), ('fpn_convs',
                                                            'fpn_output')):
        rules += [
            (ours + mine + r'\.(\d)\.conv\.(\w+)',
             lambda m, t=theirs: f'{d2}{t}{int(m.group(1)) + 2}.{m.group(2)}'),
            (ours + mine + r'\.(\d)\.bn\.(\w+)', lambda m, t=theirs:
             f'{d2}{t}{int(m.group(1)) + 2}.norm.{m.group(2)}'),
        ]
    return rules


def _ccop_official(model):
    rules = []
    for ours, side in (('', 'q'), (r'momentum_encoder\.module\.', 'k')):
        rules += _d2_resnet(ours + r'backbone\.',
                            f'backbone_{side}.bottom_up.')
        rules += _d2_fpn(ours + r'neck\.', f'backbone_{side}.')
        for mine, theirs in (('img_neck', 'img_neck'), (r'region_neck\.mlp',
                                                        'roi_neck')):
            rules += [
                (ours + mine + r'\.mlp\.0\.(\w+)',
                 f'{theirs}_{side}.mlp.linear_1.0.' + r'\1'),
                (ours + mine + r'\.mlp\.3\.(\w+)',
                 f'{theirs}_{side}.mlp.last_linear.' + r'\1'),
            ]
    rules += [
        (r'img_queue\.queue', 'img_queue', lambda t: t.t().contiguous()),
        (r'region_queue\.queue', 'roi_queue', lambda t: t.t().contiguous()),
        (r'img_queue\.ptr', 'img_queue_ptr'),
        (r'region_queue\.ptr', 'roi_queue_ptr'),
        (r'momentum_encoder\.steps', 'iter', lambda t: t.reshape(1) + 5),
    ]
    # box_jitter.progress: set from the iteration by CCOPCurriculumHook
    state = _rename(model.state_dict(), rules, drop=(r'box_jitter\.', ))
    state.update(
        pixel_mean=torch.zeros(3, 1, 1),
        pixel_std=torch.ones(3, 1, 1),
        some_new_buffer=torch.zeros(1))
    return state


def test_ccop_converter_round_trip(tmp_path, capsys):
    tool = _load_tool('ccop_to_mmregion')
    model = _build('ccop_r18_toy.py', **THIN['ccop'])
    src = tmp_path / 'ccop_official.pth'
    torch.save(
        dict(
            meta=dict(epoch=800, mmcv_version='1.0.3'),
            state_dict=_ccop_official(model),
            optimizer=dict(state={}, param_groups=[])), src)

    state, line = _run(tool, src, tmp_path / 'bb.pth', 'backbone', capsys)
    from mmpretrain.models import ResNet
    _strict_backbone_load(
        ResNet(depth=18, base_channels=16, out_indices=(0, 1, 2, 3)), state)
    assert '1 unknown: some_new_buffer' in line
    assert f'{len(model.backbone.state_dict())} keys converted' in line

    state, line = _run(tool, src, tmp_path / 'det.pth', 'detector', capsys)
    ours = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()}
    ours.update({f'neck.{k}': v for k, v in model.neck.state_dict().items()})
    assert set(state) == set(ours)
    assert all(torch.equal(state[k], v) for k, v in ours.items())

    state, line = _run(tool, src, tmp_path / 'algo.pth', 'algorithm', capsys)
    fresh = _build('ccop_r18_toy.py', **THIN['ccop'])
    _check_algorithm(fresh, state, allowed_missing=(r'box_jitter\.', ))
    for k, v in model.state_dict().items():
        if k not in ('momentum_encoder.steps', 'box_jitter.progress'):
            assert torch.equal(fresh.state_dict()[k], v), k
    assert int(fresh.momentum_encoder.steps) > 0  # keeps the key encoder
    assert '1 unknown: some_new_buffer' in line


def test_converter_refuses_unrelated_checkpoint(tmp_path):
    tool = _load_tool('ccop_to_mmregion')
    src = tmp_path / 'other.pth'
    torch.save(dict(state_dict=dict(foo=torch.zeros(1))), src)
    with pytest.raises(UserError, match='no key matched'):
        tool.main([str(src), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(src.read_bytes()[:100])
    with pytest.raises(UserError, match='cannot read checkpoint'):
        tool.main([str(truncated), str(tmp_path / 'out.pth')])


# ---- PLRC -----------------------------------------------------------------
def _plrc_official(model):
    rules = []
    for ours, side in (('', 'q'), (r'momentum_encoder\.module\.', 'k')):
        enc = f'module.encoder_{side}.enc.'
        rules += [
            (ours + r'backbone\.(.+)', enc + r'\1'),
            (ours + r'point_neck\.mlp\.(.+)', enc + r'fcs.\1'),
            (ours + r'dino_neck\.mlp\.(.+)', enc + r'fcs_2.mlp.\1'),
            (ours + r'dino_neck\.prototypes',
             enc + 'fcs_2.last_layer.weight_v'),
            (ours + r'dino_neck\.prototype_norm',
             enc + 'fcs_2.last_layer.weight_g', lambda t: t.reshape(-1, 1)),
        ]
    rules.append((r'head\.loss_distill_module\.center',
                  'module.plrc_loss.self_distillation.center'))
    # no official counterpart: our separate image neck and its queue
    drop = (r'(momentum_encoder\.module\.)?img_neck\.', r'img_queue\.',
            r'momentum_encoder\.steps')
    state = _rename(model.state_dict(), rules, drop)
    center = state['module.plrc_loss.self_distillation.center']
    state.update({
        'module.plrc_loss.ptr':
        torch.zeros(1),
        'module.plrc_loss.queue_x':
        torch.rand(64, 32),
        'module.plrc_loss_image.ptr':
        torch.zeros(1),
        'module.plrc_loss_image.queue_x':
        torch.rand(64, 32),
        'module.plrc_loss_image.self_distillation.center':
        center.clone(),
        'module.some_new_buffer':
        torch.zeros(1),
    })
    return state


def test_plrc_converter_round_trip(tmp_path, capsys):
    tool = _load_tool('plrc_to_mmregion')
    model = _build('plrc_r18_toy.py', **THIN['plrc'])
    src = tmp_path / 'checkpoint_0099.pth.tar'
    torch.save(
        dict(
            epoch=100,
            arch='resnet50',
            state_dict=_plrc_official(model),
            optimizer=dict(state={}, param_groups=[])), src)

    state, line = _run(tool, src, tmp_path / 'bb.pth', 'backbone', capsys)
    from mmpretrain.models import ResNet
    _strict_backbone_load(
        ResNet(depth=18, base_channels=16, out_indices=(3, )), state)
    assert '1 unknown: some_new_buffer' in line

    state, line = _run(tool, src, tmp_path / 'algo.pth', 'algorithm', capsys)
    fresh = _build('plrc_r18_toy.py', **THIN['plrc'])
    _check_algorithm(
        fresh,
        state,
        allowed_missing=(r'(momentum_encoder\.module\.)?img_neck\.',
                         r'img_queue\.'))
    own = fresh.state_dict()
    for k, v in model.state_dict().items():
        if 'img_neck' not in k and 'img_queue' not in k and 'steps' not in k:
            assert torch.equal(own[k], v), k
    assert int(fresh.momentum_encoder.steps) == 1


# ---- DETReg ---------------------------------------------------------------
def _ddetr_official(model):
    enc, dec = 'transformer.encoder.layers.', 'transformer.decoder.layers.'
    ffn = [(r'ffn\.layers\.0\.0\.(\w+)', 'linear1'),
           (r'ffn\.layers\.1\.(\w+)', 'linear2')]
    rules = [
        (r'detector\.backbone\.(.+)', r'backbone.0.body.\1'),
        (r'detector\.neck\.convs\.(\d)\.conv\.(\w+)', r'input_proj.\1.0.\2'),
        (r'detector\.neck\.convs\.(\d)\.gn\.(\w+)', r'input_proj.\1.1.\2'),
        (r'detector\.neck\.extra_convs\.0\.conv\.(\w+)', r'input_proj.3.0.\1'),
        (r'detector\.neck\.extra_convs\.0\.gn\.(\w+)', r'input_proj.3.1.\1'),
        (r'detector\.level_embed', 'transformer.level_embed'),
        (r'detector\.reference_points_fc\.(\w+)',
         r'transformer.reference_points.\1'),
        (r'detector\.query_embedding\.weight', 'query_embed.weight'),
        (r'detector\.encoder\.layers\.(\d+)\.self_attn\.(.+)',
         enc + r'\1.self_attn.\2'),
        (r'detector\.encoder\.layers\.(\d+)\.norms\.0\.(\w+)',
         enc + r'\1.norm1.\2'),
        (r'detector\.encoder\.layers\.(\d+)\.norms\.1\.(\w+)',
         enc + r'\1.norm2.\2'),
        (r'detector\.decoder\.layers\.(\d+)\.self_attn\.attn\.(.+)',
         dec + r'\1.self_attn.\2'),
        (r'detector\.decoder\.layers\.(\d+)\.cross_attn\.(.+)',
         dec + r'\1.cross_attn.\2'),
        (r'detector\.decoder\.layers\.(\d+)\.norms\.0\.(\w+)',
         dec + r'\1.norm2.\2'),
        (r'detector\.decoder\.layers\.(\d+)\.norms\.1\.(\w+)',
         dec + r'\1.norm1.\2'),
        (r'detector\.decoder\.layers\.(\d+)\.norms\.2\.(\w+)',
         dec + r'\1.norm3.\2'),
        (r'detector\.bbox_head\.cls_branches\.(\d+)\.(\w+)',
         r'class_embed.\1.\2'),
        (r'detector\.bbox_head\.reg_branches\.(\d+)\.(\d)\.(\w+)',
         lambda m: f'bbox_embed.{m.group(1)}.layers.{int(m.group(2)) // 2}.'
         f'{m.group(3)}'),
        (r'neck\.layers\.(\d)\.(\w+)', r'feature_embed.layers.\1.\2'),
    ]
    for side, prefix in (('encoder', enc), ('decoder', dec)):
        for pattern, name in ffn:
            rules.append((rf'detector\.{side}\.layers\.(\d+)\.' + pattern,
                          prefix + r'\1.' + name + r'.\2'))
    # the official frozen BN has no num_batches_tracked
    return _rename(
        model.state_dict(), rules, drop=(r'.*num_batches_tracked', ))


def test_detreg_converter_round_trip(tmp_path, capsys):
    tool = _load_tool('detreg_to_mmregion')
    model = _build('detreg_deformable-detr_r18_toy.py', **THIN['detreg'])
    official = _ddetr_official(model)
    official['transformer.some_new_param'] = torch.zeros(1)
    for level in range(4):  # the official input_proj convs have a bias
        official[f'input_proj.{level}.0.bias'] = torch.zeros(64)
    src = tmp_path / 'checkpoint.pth'
    # DETReg saves its argparse.Namespace; the converter allows it (only)
    torch.save(
        dict(
            model=official,
            optimizer=dict(state={}, param_groups=[]),
            epoch=49,
            args=argparse.Namespace(lr=2e-4, num_queries=20)), src)

    state, line = _run(tool, src, tmp_path / 'bb.pth', 'backbone', capsys)
    from mmdet.models import ResNet
    _strict_backbone_load(ResNet(depth=18, base_channels=16), state)
    assert '1 unknown: transformer.some_new_param' in line

    state, line = _run(tool, src, tmp_path / 'det.pth', 'detector', capsys)
    detector = _build('detreg_deformable-detr_r18_toy.py',
                      **THIN['detreg']).detector
    _check_algorithm(detector, state)
    assert 'input_proj conv bias, not in ChannelMapper+GN 4' in line
    for k, v in model.detector.state_dict().items():
        if 'num_batches_tracked' not in k:
            assert torch.equal(detector.state_dict()[k], v), k

    state, line = _run(tool, src, tmp_path / 'algo.pth', 'algorithm', capsys)
    fresh = _build('detreg_deformable-detr_r18_toy.py', **THIN['detreg'])
    _check_algorithm(fresh, state)
    for k, v in model.neck.state_dict().items():
        assert torch.equal(fresh.neck.state_dict()[k], v), k
