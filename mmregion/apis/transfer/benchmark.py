"""The stages of one protocol, in order:

    data -> boxes (ss / random / gt) -> probe of random init (every seed)
    -> GATE: MoCo v2 seed 0 pre-trained and probed, must beat random init
    -> pre-training of every other run (method x seed, variants)
    -> probe of every run at every curve point
    -> anchor coverage check -> detection (mode x init x seed)

:class:`TransferBenchmark` holds the protocol and the paths; ``plan()``
returns the :class:`.runner.Stage` list that :func:`.runner.run_stages`
runs. ``random`` is the name of the random-init "run".
"""
import os.path as osp
from typing import Dict, List, Optional

from . import data as data_mod
from .runner import Stage, load_config
from .stats import GateFailed, check_gate

RANDOM = 'random'
# rough seconds on one loaded CPU thread, for the ETA and --dry-run's
# estimate only (from the v1 run: MoCo v2 / CCOP / PLRC at full width,
# batch 16, 1.3 / 1.6 / 2.0 s per iteration; half width costs a third;
# Mask R-CNN R18 at batch 2 ~0.9 s per iteration)
COST = dict(
    pretrain_image=0.035,  # per image and iteration, half width, 96 px
    detect_image=0.15,  # per image and iteration, 128 px
    probe=60.0,  # one backbone: BN, ~3000 boxes, the classifier
    start=15.0)  # a subprocess's start-up


class TransferBenchmark:
    """One protocol's stages on one work directory.

    Args:
        protocol (dict): From :func:`.runner.load_protocol`.
        work_dir (str): Where everything is written.
        data_root (str, optional): An existing data root (no generation).
        launcher (list[str], optional): Command prefix of a distributed
            launch for the training stages.
        proposal_workers (int): Processes of the proposal generation.
    """

    def __init__(self,
                 protocol: dict,
                 work_dir: str,
                 data_root: Optional[str] = None,
                 launcher: Optional[List[str]] = None,
                 proposal_workers: int = 2):
        self.p = protocol
        self.work = osp.abspath(work_dir)
        data_root = data_root or protocol['data'].get('root')
        self.generate = data_root is None
        self.root = osp.abspath(data_root or osp.join(self.work, 'data'))
        self.launcher = launcher
        self.proposal_workers = proposal_workers
        self.results: Dict[str, dict] = {}

    # ----------------------------------------------------------- naming
    def runs(self) -> Dict[str, dict]:
        """``{run name: dict(config, boxes)}`` of every pre-training run."""
        pre = self.p['pretrain']
        out = {m: dict(v) for m, v in pre['methods'].items()}
        for name, v in (pre.get('variants') or {}).items():
            out[name] = dict(pre['methods'][v['method']], boxes=v['boxes'])
        return out

    def seeds(self) -> List[int]:
        return list(self.p['pretrain']['seeds'])

    def detect_runs(self) -> List[str]:
        """Pre-training runs that are fine-tuned (default: every method,
        no variants)."""
        runs = self.p['detection'].get('runs')
        return list(self.p['pretrain']['methods'] if runs is None else runs)

    def final_iter(self) -> int:
        return self.p['pretrain']['iters']

    def probe_name(self, run: str, seed: int, it: Optional[int]) -> str:
        return f'probe/{RANDOM}/seed{seed}' if run == RANDOM else \
            f'probe/{run}/seed{seed}/iter{it}'

    def export_path(self, run: str, seed: int) -> str:
        return osp.join(self.work, 'export', f'{run}_seed{seed}.pth')

    # ----------------------------------------------------------- stages
    def stage_data(self) -> dict:
        if self.generate:
            return data_mod.make_data(self.p['data'], self.root)
        return data_mod.check_data(self.root)

    def stage_boxes(self, kind: str) -> dict:
        return data_mod.generate_proposals(
            self.root, osp.join(self.work, 'proposals', kind), kind,
            self.p['pretrain']['proposal_min_size'], self.proposal_workers,
            osp.join(self.work, 'logs', f'proposals_{kind}.log'))

    def stage_pretrain(self, run: str, seed: int) -> dict:
        from .pretrain import run_pretrain
        spec = self.runs()[run]
        store = None if spec['boxes'] is None else \
            self.results[f'boxes/{spec["boxes"]}']['store']
        return run_pretrain(
            run, spec['config'], self.p, self.root, seed, store,
            osp.join(self.work, 'pretrain', run, f'seed{seed}'), self.launcher)

    def stage_probe(self, run: str, seed: int, it: Optional[int]) -> dict:
        from .probe import region_probe
        pr, bb = self.p['probe'], self.p['backbone']
        if run == RANDOM:
            ckpt = None
        else:
            ckpts = self.results[f'pretrain/{run}/seed{seed}']['checkpoints']
            ckpt = ckpts[str(it)] if str(it) in ckpts else ckpts[it]
        export = self.export_path(
            run, seed) if (run == RANDOM or it == self.final_iter()) else None
        paths = data_mod.split_paths(self.root)
        res = region_probe(
            ckpt,
            dict(train=paths['labeled'], dev=paths['dev'], test=paths['test']),
            data_mod.unlabeled_images(self.root, pr['bn_images']),
            len(data_mod.categories(self.root)),
            depth=bb['depth'],
            base_channels=bb['base_channels'],
            scale=pr['scale'],
            roi_size=pr['roi_size'],
            weight_decays=pr['weight_decays'],
            knn_k=pr['knn']['k'],
            knn_temperature=pr['knn']['temperature'],
            seed=seed,
            export=export)
        res.update(run=run, seed=seed, iter=it, backbone=export)
        return res

    def stage_gate(self) -> dict:
        g = self.p['gate']
        cand = self.results[self.probe_name(g['method'], g['seed'],
                                            self.final_iter())]
        base = self.results[self.probe_name(RANDOM, g['seed'], None)]
        try:
            res = check_gate(cand['linear']['correct'],
                             base['linear']['correct'], g['min_se'],
                             g['method'], 'random init')
            res['passed'] = True
        except GateFailed as e:
            if g['enforce']:
                raise
            res = dict(passed=False, enforced=False, message=str(e))
        return res

    def stage_anchors(self) -> dict:
        from .detect import anchor_coverage, coco_boxes
        det = self.p['detection']
        cfg = load_config(det['config'])
        gen = cfg.model.rpn_head.anchor_generator.to_dict()
        size = self.p['data'].get('image_size') or det['scale']
        boxes = coco_boxes(
            osp.join(self.root, data_mod.ANN['labeled']), det['scale'] / size)
        share = anchor_coverage(boxes, det['scale'], gen, det['anchor_iou'])
        res = dict(
            coverage=share,
            iou=det['anchor_iou'],
            boxes=len(boxes),
            anchors=gen)
        if share < det['min_anchor_coverage']:
            raise RuntimeError(
                f'{det["config"]}: only {100 * share:.1f} % of the labelled '
                f'boxes have an anchor with IoU >= {det["anchor_iou"]} '
                f'(needs {100 * det["min_anchor_coverage"]:.0f} %): fit '
                'the anchor scales to the objects')
        return res

    def stage_detect(self, mode: str, run: str, seed: int) -> dict:
        from .detect import run_detection
        res = run_detection(
            self.p, self.root, data_mod.categories(self.root), mode,
            self.export_path(run, seed), seed,
            osp.join(self.work, 'detect', mode, run, f'seed{seed}'))
        res.update(run=run)
        return res

    # ------------------------------------------------------------- plan
    def plan(self) -> List[Stage]:
        from .pretrain import curve_iters
        p, seeds = self.p, self.seeds()
        runs = self.runs()
        its = curve_iters(p['pretrain'])
        g = p['gate']
        if g['method'] not in runs or g['seed'] not in seeds:
            raise ValueError(f'gate: method {g["method"]!r} / seed '
                             f'{g["seed"]} is not a pre-training run')
        pre_deps = ('data', 'backbone', 'views', 'queues') + tuple(
            f'pretrain.{k}'
            for k in ('iters', 'batch', 'lr', 'weight_decay', 'warmup_iters',
                      'momentum', 'curve_every', 'proposal_min_size'))

        def run_deps(r):
            spec = pre_deps + (f'pretrain.methods.{r}', )
            return spec if r in p['pretrain']['methods'] else spec + (
                f'pretrain.variants.{r}',
                'pretrain.methods.' + p['pretrain']['variants'][r]['method'])

        st = [Stage('data', self.stage_data, ('data', ), 20, 'data')]
        for kind in sorted({r['boxes'] for r in runs.values()} - {None}):
            st.append(
                Stage(
                    f'boxes/{kind}',
                    lambda k=kind: self.stage_boxes(k),
                    ('data', 'pretrain.proposal_min_size'),
                    60,
                    'boxes'))
        for s in seeds:
            st.append(
                Stage(
                    self.probe_name(RANDOM, s, None),
                    lambda s=s: self.stage_probe(RANDOM, s, None),
                    ('data', 'backbone', 'probe'),
                    COST['probe'],
                    'probe-random'))

        def probes(r: str, s: int, group: str) -> List[Stage]:
            return [
                Stage(
                    self.probe_name(r, s, it),
                    lambda r=r, s=s, it=it: self.stage_probe(r, s, it),
                    run_deps(r) + ('probe', ),
                    60,
                    group) for it in its
            ]

        order = [(g['method'], g['seed'])
                 ] + [(r, s) for r in runs
                      for s in seeds if (r, s) != (g['method'], g['seed'])]
        pre_cost = p['pretrain']['iters'] * p['pretrain']['batch'] * COST[
            'pretrain_image'] + COST['start']
        for k, (r, s) in enumerate(order):
            group = 'gate' if k == 0 else 'pretrain'
            st.append(
                Stage(
                    f'pretrain/{r}/seed{s}',
                    lambda r=r, s=s: self.stage_pretrain(r, s),
                    run_deps(r),
                    pre_cost,
                    group))
            if k == 0:  # the gate's probes and the gate itself
                st += probes(r, s, 'gate-probe')
                st.append(
                    Stage('gate', self.stage_gate,
                          run_deps(r) + ('probe', 'gate'), 1, 'gate-check'))
        for r, s in order[1:]:
            st += probes(r, s, 'probe')
        det = p['detection']
        if det['modes']:
            st.append(
                Stage('anchors', self.stage_anchors, ('data', 'detection'), 5,
                      'anchors'))
        det_cost = det['iters'] * det['batch'] * COST[
            'detect_image'] + 2 * COST['start']
        for mode in det['modes']:
            for s in det['seeds']:
                if s not in seeds:
                    raise ValueError(f'detection.seeds: {s} has no '
                                     'pre-training seed to start from')
                for r in [RANDOM] + self.detect_runs():
                    st.append(
                        Stage(
                            f'detect/{mode}/{r}/seed{s}',
                            lambda m=mode, r=r, s=s: self.stage_detect(
                                m, r, s),
                            (run_deps(r) if r != RANDOM else pre_deps) +
                            ('probe', 'detection'),
                            det_cost,
                            'detect'))
        return st
