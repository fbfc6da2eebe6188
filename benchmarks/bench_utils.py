"""What every script in ``benchmarks/`` shares: interleaved timing rounds,
peak memory in a fresh process, a per-phase profile, the machine record and
the ``--json`` result.

The scripts touch the models only through public, stable entry points
(configs, ``MODELS.build``, ``model.loss`` / ``train_step``, ``nn.Module``
hooks), so refactoring a model's internals cannot break them;
``tests/test_benchmarks/test_benchmark_scripts.py`` runs each at tiny sizes.

A result is a dict (written with ``--json PATH``)::

    {'name', 'setting', 'sizes', 'baseline', 'methods', 'rounds', 'warmup',
     'times_ms': {model: [ms per step]}, 'median_ms': {model: ms},
     'ratios': {method: {'median', 'rounds', 'min', 'max'}},
     'memory': {model: {'peak_mib', 'step_mib', 'kind'}},
     'phases': {model: {phase: ms}}, 'extra': {...}, 'machine': {...}}
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # the checkout's mmregion when run as a script
    sys.path.insert(1, ROOT)


def add_common_args(parser: argparse.ArgumentParser,
                    rounds: int = 3,
                    warmup: int = 1) -> argparse.ArgumentParser:
    """``--rounds --warmup --threads --no-memory --phases --json``."""
    parser.add_argument(
        '--rounds',
        type=int,
        default=rounds,
        help='timed rounds; each runs every model twice, in the order '
        'baseline, methods, methods reversed, baseline (ABBA)')
    parser.add_argument(
        '--warmup', type=int, default=warmup, help='untimed steps each')
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='torch CPU threads (the table: 2)')
    parser.add_argument(
        '--no-memory',
        action='store_true',
        help='skip the peak-memory runs (one fresh process per model)')
    parser.add_argument(
        '--phases',
        action='store_true',
        help='also time one step of each model by phase (forward of each '
        'top-level submodule, backward, optimizer)')
    parser.add_argument(
        '--json', metavar='PATH', help='write the result as JSON here')
    parser.add_argument(
        '--mem-only', default=None, help=argparse.SUPPRESS)  # child process
    return parser


def sync(device) -> None:
    if str(device).startswith('cuda'):
        import torch
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device='cpu') -> float:
    """Seconds of one call of ``fn`` (device synchronised)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(steps: Dict[str, Callable[[], object]],
                baseline: str,
                rounds: int,
                warmup: int,
                device='cpu') -> dict:
    """Time every step of ``steps`` in interleaved ABBA rounds.

    A round runs ``baseline, m1, m2, ..., m2, m1, baseline`` (every model
    twice), which cancels a linear drift of the machine load; the ratio of a
    method is the per-round ``sum(method) / sum(baseline)``, summarised by
    its median (robust to a spike in one round) and its spread.

    Returns:
        dict: ``times_ms`` ({model: [ms]}), ``median_ms``, ``ratios``
        ({method: {'median', 'rounds', 'min', 'max'}}), ``rounds``,
        ``warmup``.
    """
    names = [baseline] + [n for n in steps if n != baseline]
    for _ in range(warmup):
        for n in names:
            steps[n]()
    times: Dict[str, List[float]] = {n: [] for n in names}
    per_round: List[Dict[str, float]] = []
    for _ in range(rounds):
        this = defaultdict(float)
        for n in names + names[::-1]:
            t = timed(steps[n], device)
            times[n].append(t * 1e3)
            this[n] += t
        per_round.append(this)
    ratios = {}
    for n in names[1:]:
        r = [x[n] / x[baseline] for x in per_round]
        ratios[n] = dict(
            median=statistics.median(r), rounds=r, min=min(r), max=max(r))
    return dict(
        times_ms=times,
        median_ms={
            n: statistics.median(t)
            for n, t in times.items()
        },
        ratios=ratios,
        rounds=rounds,
        warmup=warmup)


def print_timing(res: dict, target: Optional[str] = None) -> None:
    """One line per model and per ratio."""
    print(f'timing: {res["warmup"]} warm-up step(s) each, then '
          f'{res["rounds"]} interleaved ABBA round(s) (2 steps each)')
    for n, m in res['median_ms'].items():
        print(f'  {n:<18} step: median {m:9.1f} ms '
              f'(min {min(res["times_ms"][n]):.1f})')
    for n, r in res['ratios'].items():
        base = next(iter(res['median_ms']))
        rounds = ', '.join(f'{x:.2f}' for x in r['rounds'])
        print(f'  ratio {n}/{base}: median {r["median"]:.2f}x '
              f'(rounds: {rounds})' + (f'; target {target}' if target else ''))


# ---- peak memory ----------------------------------------------------------
def current_rss_mib() -> float:
    """Resident set size of this process (MiB, Linux)."""
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class RSSSampler(threading.Thread):
    """The current RSS every ``interval`` s; ``peak`` is the max.

    ``ru_maxrss`` is useless here: the imports peak above a small model's
    step. torch releases the GIL in its kernels, so samples land during it.
    """

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = current_rss_mib()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, current_rss_mib())


def step_memory(step: Callable[[], object],
                steps: int = 2,
                device='cpu') -> dict:
    """Peak memory of ``steps`` calls of ``step`` in this process (build
    the model first: ``step_mib`` is what the steps add to it)."""
    if str(device).startswith('cuda'):
        import torch
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return dict(
            peak_mib=peak / 2**20,
            step_mib=(peak - base) / 2**20,
            kind='cuda max_memory_allocated')
    base = current_rss_mib()
    sampler = RSSSampler()
    sampler.start()
    try:
        for _ in range(steps):
            step()
    finally:
        sampler.stop()
    return dict(
        peak_mib=sampler.peak,
        step_mib=sampler.peak - base,
        kind='CPU process RSS, sampled every 2 ms')


def memory_in_subprocesses(script: str, argv: Sequence[str],
                           kinds: Sequence[str]) -> Dict[str, dict]:
    """Run ``script argv --mem-only KIND`` per kind (a fresh process: clean
    peak counters); each prints its :func:`step_memory` JSON last."""
    skip = {'--phases', '--json'}
    args, it = [], iter(argv)
    for a in it:  # drop --phases, --json PATH
        if a in skip:
            if a == '--json':
                next(it, None)
            continue
        args.append(a)
    out = {}
    for kind in kinds:
        cmd = [sys.executable, osp.abspath(script), *args, '--mem-only', kind]
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [ROOT] +
            [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f'{osp.basename(script)}: the memory run of '
                               f'{kind} failed:\n{proc.stderr[-3000:]}')
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def print_memory(mem: Dict[str, dict]) -> None:
    base = next(iter(mem))
    for n, m in mem.items():
        ratio = '' if n == base else \
            f' ({m["peak_mib"] / mem[base]["peak_mib"]:.2f}x {base})'
        print(f'  {n:<18} peak {m["peak_mib"]:8.0f} MiB, step adds '
              f'{m["step_mib"]:7.0f} MiB{ratio}  [{m["kind"]}]')


# ---- phases -----------------------------------------------------------------
class PhaseTimer:
    """Wall time of the outermost submodule calls of ``model`` (forward
    hooks on every submodule up to ``depth`` levels down: any
    ``nn.Module``, no internals named).

    A call made while another hooked module runs counts in that outer one,
    so the times add up to at most the forward; a module called several
    times is summed. Use as a context manager around one step; ``times``
    maps e.g. ``'backbone'``, ``'head.loss_distill_module'``,
    ``'detector.encoder'`` to ms.
    """

    def __init__(self, model, depth: int = 4):
        self.model = model
        self.depth = depth
        self.times: Dict[str, float] = defaultdict(float)
        self._handles = []
        self._stack: List[tuple] = []

    def __enter__(self):
        for name, mod in self.model.named_modules():
            if not name or name.count('.') >= self.depth:
                continue
            self._handles.append(
                mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(
                mod.register_forward_hook(self._post(name), always_call=True))
        return self

    def _pre(self, name):

        def hook(mod, args):
            self._stack.append((name, time.perf_counter()))

        return hook

    def _post(self, name):

        def hook(mod, args, out):
            _, t0 = self._stack.pop()
            if not self._stack:  # outermost
                self.times[name] += (time.perf_counter() - t0) * 1e3

        return hook

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()


def phase_profile(model,
                  loss_fn: Callable[[], dict],
                  optim,
                  depth: int = 4) -> Dict[str, float]:
    """One step of ``model`` by phase (ms): the outermost submodule calls
    (:class:`PhaseTimer`), the rest of the loss call (``loss (other)``:
    loss terms and code between submodules), ``backward`` and
    ``optimizer``; ``total``; and ``step_rss_mib``, the growth of the
    process RSS during the step (sampled: activations, gradients, temporary
    buffers; the other models of the process are already resident).
    ``loss_fn()`` returns the loss dict; ``optim`` is a torch optimizer (or
    None)."""
    if optim is not None:
        optim.zero_grad()
    rss0 = current_rss_mib()
    sampler = RSSSampler()
    sampler.start()
    with PhaseTimer(model, depth) as pt:
        t0 = time.perf_counter()
        losses = loss_fn()
        t_fwd = (time.perf_counter() - t0) * 1e3
    loss = sum(
        sum(v) if isinstance(v, (list, tuple)) else v
        for k, v in losses.items() if 'loss' in k)
    t0 = time.perf_counter()
    loss.backward()
    t_bwd = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    if optim is not None:
        optim.step()
    t_opt = (time.perf_counter() - t0) * 1e3
    sampler.stop()
    out = dict(sorted(pt.times.items(), key=lambda kv: -kv[1]))
    out['loss (other)'] = max(t_fwd - sum(pt.times.values()), 0.)
    out['backward'] = t_bwd
    out['optimizer'] = t_opt
    out['total'] = t_fwd + t_bwd + t_opt
    out['step_rss_mib'] = sampler.peak - rss0
    return out


def print_phases(phases: Dict[str, Dict[str, float]]) -> None:
    for model, ph in phases.items():
        print(f'phases of one {model} step (ms; outermost submodule calls '
              'of the forward, then backward and optimizer):')
        for k, v in ph.items():
            if v >= 0.05 * ph['total'] or k in ('backward', 'optimizer',
                                                'total'):
                print(f'  {k:<40} {v:9.1f}')


# ---- machine record and output -------------------------------------------
def git_commit() -> str:
    """``HEAD`` of the checkout, ``+dirty`` with uncommitted changes."""
    try:
        sha = subprocess.run(['git', 'rev-parse', '--short=10', 'HEAD'],
                             cwd=ROOT,
                             capture_output=True,
                             text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '-uno'],
                               cwd=ROOT,
                               capture_output=True,
                               text=True).stdout.strip()
        return sha + ('+dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def machine() -> dict:
    """CPU, cores, load average, library versions, commit, time (UTC)."""
    import numpy
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        load_avg=[round(x, 2) for x in os.getloadavg()],
        torch_threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0)
        if torch.cuda.is_available() else None,
        python=platform.python_version(),
        torch=torch.__version__,
        numpy=numpy.__version__,
        commit=git_commit(),
        utc=time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()))


def finish(result: dict, args) -> dict:
    """Add the machine record; write ``--json`` atomically; return it."""
    result['machine'] = machine()
    if getattr(args, 'json', None):
        from mmregion.utils.atomic_io import atomic_write_json
        d = osp.dirname(osp.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        atomic_write_json(args.json, result, indent=1)
    return result
