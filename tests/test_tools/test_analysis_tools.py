"""tools/analysis_tools/{browse_views,get_flops,analyze_logs,region_probe,
supervised_control}.py and tools/model_converters/publish_model.py on the toy
set / tiny inputs."""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from tool_utils import load_tool

from mmregion.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CCOP_TOY = osp.join(ROOT, 'configs', 'mmregion', 'ccop_r18_toy.py')

_load_tool = load_tool


# ---- browse_views ---------------------------------------------------------
def test_draw_views_matched_regions_share_colours():
    bv = _load_tool('analysis_tools/browse_views')
    from mmregion.apis.visualization import region_colours
    views = [np.zeros((40, 50, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)]
    boxes = np.array(
        [[[2, 2, 20, 20], [25, 5, 45, 30]], [[10, 8, 30, 25], [1, 1, 12, 12]]],
        np.float32)
    canvas = bv.draw_views(views, boxes)
    assert canvas.shape == (40, 50 + bv.GAP + 40, 3)
    colours = region_colours(2)
    off = 50 + bv.GAP
    for k in range(2):
        x0, y0 = boxes[0, k, :2].astype(int)
        x1, y1 = boxes[1, k, :2].astype(int)
        # the top-left corner of region k has colour k in both views
        assert (canvas[y0 + 5, x0] == colours[k]).all()
        assert (canvas[y1 + 5, off + x1] == colours[k]).all()


def test_browse_views_on_toy_set(toy_coco, toy_proposals, tmp_path, capsys):
    out = tmp_path / 'views'
    _load_tool('analysis_tools/browse_views').main([
        CCOP_TOY, '--output-dir',
        str(out), '--num', '3', '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_coco}/',
        f'train_dataloader.dataset.pipeline.1.proposal_file={toy_proposals}'
    ])
    files = sorted(os.listdir(out))
    assert len(files) == 3 and all(f.endswith('.png') for f in files)
    img = cv2.imread(str(out / files[0]))
    assert img is not None and img.shape[1] > img.shape[0]  # side by side
    assert 'wrote 3 images' in capsys.readouterr().out


# ---- get_flops ------------------------------------------------------------
def test_get_flops_tiny_input(capsys):
    gf = _load_tool('analysis_tools/get_flops')
    from mmengine.config import Config
    cfg = Config.fromfile(CCOP_TOY)
    info = gf.get_flops(cfg, [32], module='backbone')
    from mmpretrain.models import ResNet
    expected = sum(p.numel() for p in ResNet(depth=18).parameters())
    assert info['params'] == expected
    assert info['flops'] > 0 and info['shape'] == (32, 32)
    # the whole model in tensor mode (= the transferred encoder here)
    whole = gf.get_flops(cfg, [32, 48])
    assert whole['flops'] >= info['flops']
    with pytest.raises(UserError, match='no such submodule'):
        gf.get_flops(cfg, [32], module='nope')
    gf.main([CCOP_TOY, '--shape', '32', '--module', 'backbone'])
    assert 'Flops:' in capsys.readouterr().out


# ---- analyze_logs ---------------------------------------------------------
def _write_log(path, n=6):
    with open(path, 'w') as f:
        for i in range(1, n + 1):
            f.write(
                json.dumps(
                    dict(
                        loss=5. / i,
                        loss_img=3. / i,
                        lr=0.1,
                        time=0.5,
                        iter=i,
                        step=i)) + '\n')
        f.write('{not json\n')
        f.write(json.dumps({'coco/bbox_mAP': 0.1, 'step': 1}) + '\n')


def test_analyze_logs_plot_curve_and_time(tmp_path, capsys):
    al = _load_tool('analysis_tools/analyze_logs')
    log = tmp_path / 'scalars.json'
    _write_log(log)
    parsed = al.load_json_log(str(log))
    assert [s for s, _ in parsed['loss']] == [1., 2., 3., 4., 5., 6.]
    assert 'skipped 1 line' in capsys.readouterr().err
    png = tmp_path / 'curves.png'
    al.main([
        'plot_curve',
        str(log), '--keys', 'loss', 'loss_img', '--out',
        str(png)
    ])
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 100
    al.main(['cal_train_time', str(log)])
    assert 'average 0.5000 s/iter' in capsys.readouterr().out
    with pytest.raises(UserError, match='none of the keys'):
        al.main([
            'plot_curve',
            str(log), '--keys', 'loss_typo', '--out',
            str(tmp_path / 'x.png')
        ])
    assert not (tmp_path / 'x.png').exists()


# ---- publish_model --------------------------------------------------------
def test_publish_model_strips_and_hashes(tmp_path, capsys):
    pm = _load_tool('model_converters/publish_model')
    src = tmp_path / 'epoch_1.pth'
    weights = dict(w=torch.arange(6.).reshape(2, 3))
    torch.save(
        dict(
            state_dict=weights,
            meta=dict(epoch=1),
            optimizer=dict(state=dict(), param_groups=[]),
            message_hub=dict(log_scalars=dict()),
            param_schedulers=[dict(last_step=3)]), src)
    pm.main([str(src), str(tmp_path / 'ccop_toy.pth')])
    outs = [f for f in os.listdir(tmp_path) if f.startswith('ccop_toy-')]
    assert len(outs) == 1
    path = tmp_path / outs[0]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert outs[0] == f'ccop_toy-{sha[:8]}.pth'
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert torch.equal(ckpt['state_dict']['w'], weights['w'])
    assert 'dropped: message_hub, optimizer, param_schedulers' in \
        capsys.readouterr().out
    with pytest.raises(UserError, match='must end with .pth'):
        pm.main([str(src), str(tmp_path / 'x.tar')])
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(src.read_bytes()[:64])
    with pytest.raises(UserError, match='cannot read checkpoint'):
        pm.main([str(bad), str(tmp_path / 'y.pth')])
    # issue 26 minor: a state_dict that is not weights is not published
    for value, what in [([1, 2], 'list'), ('w', 'str'), ({}, '0 entries')]:
        odd = tmp_path / 'odd.pth'
        torch.save(dict(state_dict=value), odd)
        with pytest.raises(UserError, match=f'non-empty dict.*got {what}'):
            pm.main([str(odd), str(tmp_path / 'z.pth')])
    assert not [f for f in os.listdir(tmp_path) if f.startswith('z-')]


def test_supervised_control_then_region_probe(tmp_path, capsys):
    """The probe's positive control (a backbone trained with the labels)
    loads like any backbone, and the demo's last step compares it with
    random init on the same test boxes: a paired interval, a McNemar p and
    a verdict."""
    from mmregion.apis.transfer.probe import build_backbone
    from mmregion.testing.toy_data_hard import make_hard_toy_coco
    make_hard_toy_coco(
        str(tmp_path / 'd'), num_train=8, num_val=6, size=64, labeled_frac=1)
    d = tmp_path / 'd'
    ckpt = tmp_path / 'control.pth'
    control = _load_tool('analysis_tools/supervised_control')
    assert control.main([
        str(d / 'annotations/instances_train.json'),
        str(d / 'train'),
        str(ckpt), '--iters', '2', '--batch', '2', '--log-every', '1'
    ]) == 0
    logged = capsys.readouterr().out
    assert logged.count('iter ') == 2 and 'nan' not in logged
    trained = build_backbone(checkpoint=str(ckpt)).state_dict()
    fresh = build_backbone(seed=0).state_dict()
    assert not torch.allclose(trained['conv1.weight'], fresh['conv1.weight'])
    assert control.main(['no.json', 'x', str(tmp_path / 'y.pth')]) == 2
    tool = _load_tool('analysis_tools/region_probe')
    out = tmp_path / 'probe.json'
    rc = tool.main([
        str(d / 'annotations/instances_train_labeled.json'),
        str(d / 'train'),
        str(d / 'annotations/instances_val.json'),
        str(d / 'val'), '--checkpoint', f'control={ckpt}', '--bn-images', '4',
        '--out',
        str(out)
    ])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res['results']) == {'random', 'control'}
    c = res['comparisons']['control']
    assert c['low'] <= c['diff'] <= c['high']
    assert 0 <= c['p'] <= 1
    assert c['verdict'] in ('better', 'worse', 'no significant difference')
    assert 'vs random init' in capsys.readouterr().out
    # bad input: one line, rc 2
    assert tool.main(['a', 'b', 'c', 'd', '--checkpoint', 'nopath']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'NAME=PATH' in err[0]
