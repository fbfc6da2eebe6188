"""Reading a protocol and running its stages resumably.

A protocol is an mmengine config file (``configs/protocols/*.py``) whose
top-level dicts (``data``, ``backbone``, ``views``, ``queues``,
``pretrain``, ``gate``, ``probe``, ``detection``, ``claims``) hold every
number the stages use; its ``quick`` dict is merged over it by
``--quick``. A stage is a function returning a JSON-able dict, stored in
``WORK/stages/<name>.json`` (atomically) with a fingerprint of the protocol
sections it depends on: a rerun skips finished stages, and a stage made
under other settings is refused rather than silently reused.
"""
import copy
import hashlib
import json
import os
import os.path as osp
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

from mmregion.utils.atomic_io import atomic_write_json

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SECTIONS = ('data', 'backbone', 'views', 'queues', 'pretrain', 'gate', 'probe',
            'detection', 'claims', 'alpha')

# mmengine's config loader checks packages through pkg_resources, which
# is not thread-safe: stages running side by side (--jobs) load one at a time
_CONFIG_LOCK = threading.Lock()


def load_config(path: str):
    """``mmengine.Config.fromfile(path)`` (``path`` relative to the
    repository), one thread at a time."""
    from mmengine.config import Config
    with _CONFIG_LOCK:
        return Config.fromfile(osp.join(REPO, path))


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, recursively for dicts (a dict
    with ``_delete_=True`` replaces instead, as in mmengine configs)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and v.get('_delete_'):
            out[k] = {kk: vv for kk, vv in v.items() if kk != '_delete_'}
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_protocol(path: str, quick: bool = False) -> dict:
    """The protocol of ``path`` as a plain dict (``quick`` merged in when
    asked), with ``name`` and ``mode`` set.

    Raises:
        ValueError: When a section is missing (one line naming it).
    """
    cfg = load_config(osp.abspath(path)).to_dict()
    missing = [s for s in SECTIONS if s not in cfg]
    if missing:
        raise ValueError(f'protocol {path}: missing sections {missing} (see '
                         'configs/protocols/transfer_toy_cpu.py)')
    quick_cfg = cfg.pop('quick', None)
    if quick:
        if not quick_cfg:
            raise ValueError(f'protocol {path}: --quick needs a `quick` dict '
                             'of overrides')
        cfg = merge(cfg, quick_cfg)
    proto = {k: cfg[k] for k in SECTIONS}
    proto['name'] = osp.splitext(osp.basename(path))[0]
    proto['mode'] = 'quick' if quick else 'full'
    proto['path'] = osp.relpath(osp.abspath(path), REPO) \
        if osp.abspath(path).startswith(REPO + os.sep) else path
    return proto


def _lookup(protocol: dict, dotted: str):
    node = protocol
    for part in dotted.split('.'):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def fingerprint(protocol: dict, deps: Sequence[str]) -> str:
    """A short digest of the protocol entries a stage depends on (section
    names or dotted paths such as ``pretrain.iters``)."""
    blob = json.dumps({d: _lookup(protocol, d)
                       for d in sorted(deps)},
                      sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


class Stage:
    """One resumable unit of work.

    Args:
        name (str): Unique name, ``/``-separated (``pretrain/ccop/seed0``).
        fn (callable): Returns the stage's JSON-able result dict.
        deps (list[str]): Protocol sections its result depends on.
        cost (float): Rough seconds on the protocol's machine (ETA only).
        group (str): Stages of one group may run in parallel (``--jobs``).
    """

    def __init__(self,
                 name: str,
                 fn: Callable[[], dict],
                 deps: Sequence[str] = SECTIONS,
                 cost: float = 1.0,
                 group: Optional[str] = None):
        self.name, self.fn, self.deps = name, fn, tuple(deps)
        self.cost, self.group = cost, group or name

    def marker(self, work_dir: str) -> str:
        return osp.join(work_dir, 'stages',
                        self.name.replace('/', '__') + '.json')


def run_command(cmd: List[str], log: str) -> None:
    """Run ``cmd`` from the repository with its output appended to ``log``.

    Raises:
        RuntimeError: On a non-zero exit, with the log's last lines.
    """
    os.makedirs(osp.dirname(log), exist_ok=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    with open(log, 'a') as f:
        f.write('$ ' + shlex.join(cmd) + '\n')
        f.flush()
        code = subprocess.call(
            cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        with open(log, errors='replace') as f:
            tail = ''.join(f.readlines()[-25:])
        raise RuntimeError(
            f'stage command failed (exit {code}); log {log}:\n{tail}')


def _fmt(sec: float) -> str:
    sec = int(max(sec, 0))
    return f'{sec // 3600}h{sec % 3600 // 60:02d}m' if sec >= 3600 else \
        f'{sec // 60}m{sec % 60:02d}s'


def run_stages(stages: List[Stage],
               protocol: dict,
               work_dir: str,
               results: Dict[str, dict],
               jobs: int = 1,
               log: Callable[[str], None] = print) -> None:
    """Run the stages in order (consecutive stages of one group ``jobs`` at
    a time), skipping those finished earlier under the same settings.

    Results land in ``results`` (by stage name) as each stage finishes.

    Raises:
        RuntimeError: A stage failed or was made under other settings.
    """
    todo = []
    for stage in stages:
        marker = stage.marker(work_dir)
        fp = fingerprint(protocol, stage.deps)
        if osp.isfile(marker):
            with open(marker) as f:
                done = json.load(f)
            if done.get('fingerprint') != fp:
                raise RuntimeError(
                    f'{marker} was made under other protocol settings '
                    f'({stage.deps}): use another --work-dir or delete it')
            results[stage.name] = done
        else:
            todo.append((stage, fp))
    total = sum(s.cost for s, _ in todo)
    start, spent_cost = time.time(), 0.0
    skipped = len(stages) - len(todo)
    if skipped:
        log(f'{skipped} stage(s) done earlier (skipped)')

    def one(stage: Stage, fp: str) -> None:
        t0 = time.time()
        log(f'[{stage.name}] start')
        result = stage.fn()
        result['seconds'] = round(time.time() - t0, 1)
        result['fingerprint'] = fp
        atomic_write_json(stage.marker(work_dir), result, indent=1)
        results[stage.name] = result
        log(f'[{stage.name}] done in {_fmt(time.time() - t0)}')

    i = 0
    while i < len(todo):
        j = i
        while j < len(todo) and todo[j][0].group == todo[i][0].group:
            j += 1
        batch = todo[i:j]
        elapsed = time.time() - start
        rate = elapsed / spent_cost if spent_cost else 1.0
        log(f'-- {batch[0][0].group}: {len(batch)} stage(s); elapsed '
            f'{_fmt(elapsed)}, ETA {_fmt(rate * (total - spent_cost))}')
        if jobs > 1 and len(batch) > 1:
            with ThreadPoolExecutor(jobs) as pool:
                for fut in [pool.submit(one, s, fp) for s, fp in batch]:
                    fut.result()
        else:
            for s, fp in batch:
                one(s, fp)
        spent_cost += sum(s.cost for s, _ in batch)
        i = j
