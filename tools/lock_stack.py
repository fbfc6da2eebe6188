"""The lock of the tested stack: ``requirements/constraints.txt``.

The lock pins every distribution that CI runs, exactly. ``tools/install.sh``
installs through it (``pip install -c``); this script checks that the lock
still resolves, and rewrites it when a pin is changed on purpose.

``--check`` (CI, ``.ci/run``) resolves the whole install with
``pip install --dry-run --report`` in a new, empty virtual environment,
against the lock, and fails (exit 1, one line per problem) when:

* the resolution fails (a conflict, or a pinned release that is gone);
* it brings in a distribution that the lock does not pin (a new dependency
  of something we install: the stack drifted);
* a pin of the lock is not needed any more (a stale line);
* a package that ``tools/install.sh`` installs with ``--no-deps``
  (:data:`NO_DEPS`) declares a requirement that the lock does not satisfy
  (apart from :data:`REPLACED`, which we provide otherwise on purpose).

``--write`` resolves the same install without the lock, keeping the pins of
:data:`HAND_PINNED` from the current lock, and writes the result.

Stdlib only (it runs before anything is installed). Usage::

    python tools/lock_stack.py --check
    python tools/lock_stack.py --write
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOCK = osp.join(ROOT, 'requirements', 'constraints.txt')
# resolved with their dependencies
TOP_LEVEL = ('runtime.txt', 'tests.txt', 'lint.txt', 'docs.txt',
             'stack_deps.txt')
# installed with --no-deps (their imports are requirements/stack_deps.txt);
# mmcv is built from its sdist, so a dry run cannot read its metadata
# without building it: its requirements are listed in stack_deps.txt too
NO_DEPS = ('mmengine', 'mmcv', 'mmdet', 'mmpretrain', 'openmim')
# requirements of NO_DEPS packages that are deliberately not installed
REPLACED = {
    'opencv-python': 'opencv-contrib-python-headless provides cv2',
    'opencv-python-headless': 'opencv-contrib-python-headless provides cv2',
    'opendatalab': 'openmim never imports it',
    'pip': 'present in every environment',
}
# chosen by hand (docs/get_started.md "Supported stack"); --write keeps them
HAND_PINNED = ('torch', 'torchvision', 'numpy',
               'opencv-contrib-python-headless') + NO_DEPS
# '===' (PEP 440 arbitrary equality): the registry's build, never a local
# '+cpu' wheel of the same release that a find-links folder may offer
EXACT = ('torch', 'torchvision')

HEADER = """\
# The lock of the tested stack: the exact version of every distribution
# that CI runs (Python 3.11, x86_64 Linux). tools/install.sh installs
# through it (`pip install -c requirements/constraints.txt`, replacing what
# is outside mmregion's supported range, keeping an in-range stack);
# `python tools/lock_stack.py --check` (in .ci/run) fails when it no longer
# resolves; `python tools/lock_stack.py --write` rewrites it after a pin in
# the hand-pinned block is changed. torch/torchvision use '===' so that a
# local '+cpu' wheel of the same release is never taken
# (docs/get_started.md "Supported stack").
"""


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def read_lock(path: str = LOCK) -> Dict[str, str]:
    """``{canonical name: version}`` of the lock file.

    Raises:
        ValueError: A line that is not ``name==version`` or
            ``name===version``, naming the file and line.
    """
    pins = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split('#')[0].strip()
            if not line:
                continue
            m = re.fullmatch(r'([A-Za-z0-9_.\-]+)\s*===?\s*([^\s;=]+)', line)
            if m is None:
                raise ValueError(f'{path}:{n}: expected name==version, got '
                                 f'{line!r}')
            pins[canonical(m.group(1))] = m.group(2)
    return pins


def pin_line(name: str, version: str) -> str:
    """``torch===2.13.0`` for :data:`EXACT`, else ``name==version``."""
    return f"{name}{'===' if name in EXACT else '=='}{version}"


def write_lock(pins: Dict[str, str], path: str = LOCK) -> None:
    """Write the lock: the hand-pinned block first, then the rest sorted."""
    hand = [pin_line(n, pins[n]) for n in HAND_PINNED if n in pins]
    rest = [
        pin_line(n, v) for n, v in sorted(pins.items()) if n not in HAND_PINNED
    ]
    text = (
        HEADER + '\n# hand-pinned\n' + '\n'.join(hand) +
        '\n\n# resolved (tools/lock_stack.py --write)\n' + '\n'.join(rest) +
        '\n')
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def requirement_names(fname: str) -> List[str]:
    """Canonical names of the requirements in ``requirements/FNAME``."""
    names = []
    with open(osp.join(ROOT, 'requirements', fname)) as f:
        for line in f:
            m = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)', line)
            if m and not line.lstrip().startswith('#'):
                names.append(canonical(m.group(1)))
    return names


def top_level_args() -> List[str]:
    """``-r`` arguments for the requirement files resolved with deps."""
    args = []
    for name in TOP_LEVEL:
        args += ['-r', osp.join(ROOT, 'requirements', name)]
    return args


def _pip_report(py: str, args: List[str]) -> Tuple[Optional[dict], str]:
    """Run a ``pip install --dry-run --report`` and return (report, log)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = osp.join(tmp, 'report.json')
        cmd = [
            py, '-m', 'pip', 'install', '--dry-run', '--ignore-installed',
            '--disable-pip-version-check', '-q', '--report', report
        ] + args
        out = subprocess.run(cmd, capture_output=True, text=True)
        log = '\n'.join(
            ln for ln in (out.stdout + out.stderr).splitlines()
            if 'is ignored: it is neither' not in ln)
        if out.returncode != 0 or not osp.exists(report):
            return None, log
        with open(report) as f:
            return json.load(f), log


def resolve(pins: Dict[str, str],
            constrained: bool) -> Tuple[Dict[str, str], List[dict], str]:
    """Resolve the install in a new empty virtual environment.

    Args:
        pins (dict): The lock (hand pins are taken from it).
        constrained (bool): Resolve against the lock file (``-c``).

    Returns:
        tuple: ``({name: version} resolved with deps, [metadata of the
        no-deps packages], error)``; error is '' on success.
    """
    with tempfile.TemporaryDirectory() as tmp:
        venv = osp.join(tmp, 'venv')
        subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
        py = osp.join(venv, 'bin', 'python')
        cons = ['-c', LOCK] if constrained else []
        hand = [pin_line(n, pins[n]) for n in ('torch', 'torchvision')]
        hand += [
            f'{n}=={pins[n]}'
            for n in ('numpy', 'opencv-contrib-python-headless')
        ]
        report, log = _pip_report(py, cons + top_level_args() + hand)
        if report is None:
            return {}, [], 'resolution failed:\n' + log[-3000:]
        resolved = {
            canonical(i['metadata']['name']): i['metadata']['version']
            for i in report['install']
        }
        # mmcv is an sdist: its metadata needs a build (see NO_DEPS)
        nodeps = [f'{n}=={pins[n]}' for n in NO_DEPS if n != 'mmcv']
        report, log = _pip_report(py, cons + ['--no-deps'] + nodeps)
        if report is None:
            return {}, [], 'no-deps packages do not resolve:\n' + log[-3000:]
        return resolved, [i['metadata'] for i in report['install']], ''


def _requirement_cls():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a fresh machine: pip's vendored copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def unmet_requirements(metadata: List[dict], pins: Dict[str,
                                                        str]) -> List[str]:
    """Requirements of the no-deps packages that the lock does not meet."""
    requirement = _requirement_cls()
    problems = []
    for meta in metadata:
        for text in meta.get('requires_dist', []):
            req = requirement(text)
            marker_ok = req.marker is None or req.marker.evaluate(
                {'extra': ''})
            if not marker_ok:
                continue
            name = canonical(req.name)
            if name in REPLACED:
                continue
            if name not in pins:
                problems.append(f"{meta['name']} {meta['version']} requires "
                                f'{text}, which the lock does not pin')
            elif not req.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{meta['name']} {meta['version']} requires "
                                f'{text}, the lock pins {pins[name]}')
    return problems


def check() -> List[str]:
    """All problems of the lock (empty: the lock is consistent)."""
    pins = read_lock()
    resolved, metadata, error = resolve(pins, constrained=True)
    if error:
        return [error]
    problems = []
    for name, version in sorted(resolved.items()):
        if name not in pins:
            problems.append(f'{name}=={version} is installed but not pinned '
                            'in the lock (a new dependency: run '
                            'python tools/lock_stack.py --write)')
        elif pins[name] != version:
            problems.append(f'{name}: resolved {version}, lock {pins[name]}')
    for name in sorted(set(pins) - set(resolved) - set(NO_DEPS)):
        problems.append(f'{name}=={pins[name]} is pinned but nothing needs '
                        'it (a stale pin: run python tools/lock_stack.py '
                        '--write)')
    return problems + unmet_requirements(metadata, pins)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        '--check',
        action='store_true',
        help='fail when the lock no longer resolves')
    group.add_argument(
        '--write', action='store_true', help='re-resolve and rewrite the lock')
    args = parser.parse_args()
    start = time.time()
    if args.check:
        problems = check()
        for p in problems:
            print(f'[lock] {p}', file=sys.stderr)
        status = 'FAILED' if problems else 'OK'
        print(f'[lock] {osp.relpath(LOCK, ROOT)}: {status} '
              f'({len(read_lock())} pins, {time.time() - start:.0f} s)')
        return 1 if problems else 0
    pins = read_lock()
    resolved, metadata, error = resolve(pins, constrained=False)
    if error:
        print(f'[lock] {error}', file=sys.stderr)
        return 1
    new = dict(resolved)
    new.update({n: pins[n] for n in NO_DEPS})
    unmet = unmet_requirements(metadata, new)
    for p in unmet:
        print(f'[lock] {p}', file=sys.stderr)
    write_lock(new)
    print(f'[lock] wrote {osp.relpath(LOCK, ROOT)} ({len(new)} pins, '
          f'{time.time() - start:.0f} s)')
    return 1 if unmet else 0


if __name__ == '__main__':
    sys.exit(main())
