"""The lint gate: tools/lint.sh (run by .ci/run before the tests) checks
with the linters pinned in requirements/lint.txt, the versions of the
pre-commit hooks."""
import importlib.util
import os.path as osp
import subprocess

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LINT = osp.join(ROOT, 'tools', 'lint.sh')


def _pins():
    pins = {}
    for line in open(osp.join(ROOT, 'requirements', 'lint.txt')):
        line = line.split('#')[0].strip()
        if line:
            name, version = line.split('==')
            pins[name] = version
    return pins


def test_pins_match_pre_commit_and_ci_runs_the_gate_first():
    hooks = yaml.safe_load(open(osp.join(ROOT, '.pre-commit-config.yaml')))
    revs = {
        h['id']: repo['rev'].lstrip('v')
        for repo in hooks['repos']
        for h in repo['hooks']
    }
    pins = _pins()
    assert set(pins) == {'flake8', 'isort', 'yapf'}
    for name, version in pins.items():
        assert revs[name] == version, name
    ci = open(osp.join(ROOT, '.ci', 'run')).read()
    assert 'requirements/lint.txt' in ci
    assert 0 <= ci.index('bash tools/lint.sh') < ci.index(
        'bash tools/run_tests.sh')


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ('flake8', 'isort', 'yapf')),
    reason='linters of requirements/lint.txt not installed')
def test_lint_sh_passes_clean_code_and_fails_on_errors(tmp_path):
    good = tmp_path / 'good.py'
    good.write_text('import os\n\nprint(os.sep)\n')
    run = subprocess.run(['bash', LINT, str(good)],
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'lint: OK' in run.stdout
    for name, text, tool in [('unused.py', 'import os\n', 'flake8'),
                             ('order.py', 'import sys\nimport os\n\n'
                              'print(os.sep, sys.argv)\n', 'isort'),
                             ('style.py', 'x = [1,\n  2]\n', 'yapf')]:
        bad = tmp_path / name
        bad.write_text(text)
        run = subprocess.run(['bash', LINT, str(bad)],
                             capture_output=True,
                             text=True)
        assert run.returncode != 0, name
        assert f'!! {tool} failed' in run.stderr, (name, run.stderr)
