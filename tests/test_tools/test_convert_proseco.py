import copy
import os.path as osp

import torch
from tool_utils import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    return load_tool('convert_proseco_to_ddetr')


def test_convert_proseco_checkpoint(tmp_path, capsys):
    import sys
    sys.path.insert(0, osp.join(REPO, 'tests', 'test_models',
                                'test_algorithms'))
    from test_proseco import _build, tiny_detector_cfg
    tool = _load_tool()
    model = _build()
    ckpt = tmp_path / 'proseco.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    # a fine-tuning config: the same detector with 4 classes, mmdet scope
    det = tiny_detector_cfg()
    det['type'] = 'DeformableDETR'
    det['bbox_head']['num_classes'] = 4

    def strip(cfg):  # mmdet-scope names for the fine-tuning config
        if isinstance(cfg, dict):
            return {
                k: (v.replace('mmdet.', '')
                    if k == 'type' and isinstance(v, str) else strip(v))
                for k, v in cfg.items()
            }
        if isinstance(cfg, list):
            return [strip(c) for c in cfg]
        return cfg

    cfg_file = tmp_path / 'ft.py'
    cfg_file.write_text(f"default_scope = 'mmdet'\nmodel = {strip(det)!r}\n")
    out = tmp_path / 'out' / 'ddetr.pth'
    rc = tool.main([str(ckpt), str(out), '--config', str(cfg_file)])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert 'missing: 2' in text  # the new 4-class cls branch
    assert 'unexpected: 0' in text and 'shape_mismatch: 0' in text
    conv = torch.load(out, map_location='cpu', weights_only=True)
    sd = conv['state_dict']
    # no teacher, no object-embedding neck (``neck.layers``: the detector's
    # own neck is ``neck.convs``), no prefix
    assert not any(
        k.startswith(('teacher', 'neck.layers', 'detector.')) for k in sd)
    assert any(k.startswith('neck.convs') for k in sd)
    assert not any('cls_branches' in k for k in sd)
    ref = model.detector.state_dict()
    torch.testing.assert_close(sd['query_embedding.weight'],
                               ref['query_embedding.weight'])
    # the fine-tuning model loads it (load_from semantics: strict=False)
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ft = MMDET_MODELS.build(copy.deepcopy(strip(det)))
    res = ft.load_state_dict(sd, strict=False)
    assert set(res.missing_keys) == {
        'bbox_head.cls_branches.0.weight', 'bbox_head.cls_branches.0.bias'
    }
    assert not res.unexpected_keys

    # without a config, --num-classes decides; 1 class keeps the branch
    out2 = tmp_path / 'keep.pth'
    assert tool.main([str(ckpt), str(out2), '--num-classes', '1']) == 0
    sd2 = torch.load(out2, weights_only=True)['state_dict']
    assert 'bbox_head.cls_branches.0.weight' in sd2
    assert not list(tmp_path.glob('**/*.tmp'))  # atomic write left nothing
