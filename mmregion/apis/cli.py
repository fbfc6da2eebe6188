"""Helpers shared by ``tools/train.py`` and ``tools/test.py``.

They turn the usual user mistakes (a config path that does not exist, a
``--cfg-options`` key that is not in the config, an unknown ``type=``) into
one clear line instead of a deep traceback.
"""
import argparse
import difflib
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from mmengine.config import Config, ConfigDict, DictAction

from mmregion.utils.errors import UserError

__all__ = [
    'UserError', 'load_config', 'check_cfg_options', 'explain_exception',
    'setup_cpu_distributed', 'slurm_dist_env', 'add_cfg_options_args',
    'apply_cfg_options', 'run_cli', 'run_tool'
]


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing/unparsable file."""
    if not osp.isfile(path):
        hint = ''
        root = osp.dirname(path) or '.'
        if osp.isdir(root):
            close = difflib.get_close_matches(
                osp.basename(path), os.listdir(root), n=1)
            if close:
                hint = f' (did you mean {osp.join(root, close[0])}?)'
        raise UserError(f'config file {path} does not exist{hint}')
    try:
        return Config.fromfile(path)
    except (SyntaxError, FileNotFoundError, ImportError, KeyError,
            TypeError) as e:
        msg = str(e).strip().splitlines()
        raise UserError(f'cannot parse config {path}: '
                        f'{type(e).__name__}: {msg[0] if msg else ""}') \
            from None


def _keys_of(node: Any) -> List[str]:
    if isinstance(node, dict):
        return [str(k) for k in node.keys()]
    if isinstance(node, (list, tuple)):
        return [str(i) for i in range(len(node))]
    return []


def check_cfg_options(cfg: Config,
                      options: Optional[Dict[str, Any]],
                      strict: bool = True) -> List[str]:
    """Check that every ``--cfg-options`` key path exists in ``cfg``.

    mmengine creates unknown keys (which is how a user adds a new entry),
    so a typo (``optim_wraper.lr``) would silently train with the default.
    Every dotted key is followed through ``cfg``; list indices are allowed as
    path components.

    Args:
        cfg (Config): The loaded config.
        options (dict, optional): Parsed ``--cfg-options``.
        strict (bool): Raise on the first key that is not in ``cfg``
            (``--strict-cfg-options``); otherwise return one warning line per
            such key (they are added, as mmengine does). Defaults to True.

    Returns:
        list[str]: Warning lines (empty when every key exists).

    Raises:
        UserError: ``strict`` and a key path does not exist, naming the first
            missing component and close matches.
    """
    warnings = []
    for full_key in options or {}:
        node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        done = []
        for part in full_key.split('.'):
            keys = _keys_of(node)
            if part not in keys:
                where = '.'.join(done) or '<root>'
                close = difflib.get_close_matches(part, keys, n=3)
                hint = f'; did you mean {", ".join(close)}?' if close else ''
                msg = (f'--cfg-options key "{full_key}" does not exist in '
                       f'the config: no "{part}" under {where}{hint}')
                if strict:
                    raise UserError(msg)
                warnings.append(f'{msg} (added as a new key; '
                                '--strict-cfg-options makes this an error)')
                break
            node = node[int(part)] if isinstance(node,
                                                 (list, tuple)) else node[part]
            done.append(part)
    return warnings


def add_cfg_options_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options`` and ``--strict-cfg-options`` to ``parser``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into the config file. A key that '
        'is not in the config is added (as mmengine does) with a warning '
        'that names close matches.')
    parser.add_argument(
        '--strict-cfg-options',
        action='store_true',
        help='make a --cfg-options key that is not in the config an error')


def apply_cfg_options(cfg: Config, args: argparse.Namespace) -> Config:
    """Check and merge ``args.cfg_options`` into ``cfg`` (in place).

    Keys that are not in the config are printed as warnings on stderr (or,
    with ``args.strict_cfg_options``, raise :class:`UserError`).
    """
    options = getattr(args, 'cfg_options', None)
    lines = check_cfg_options(
        cfg, options, strict=getattr(args, 'strict_cfg_options', False))
    for line in lines:
        print(f'warning: {line}', file=sys.stderr)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def _scoped_alternatives(obj_type: str) -> List[str]:
    """Names of ``obj_type`` in other libraries' registries (for hints)."""
    found = []
    name = obj_type.split('.')[-1]
    for scope in ('mmregion', 'mmpretrain', 'mmdet', 'mmengine'):
        try:
            import importlib
            reg_mod = importlib.import_module(f'{scope}.registry')
        except Exception:  # pragma: no cover - optional libs
            continue
        for attr in ('MODELS', 'TRANSFORMS', 'DATASETS', 'HOOKS', 'METRICS',
                     'TASK_UTILS'):
            reg = getattr(reg_mod, attr, None)
            if reg is None:
                continue
            try:
                reg.import_from_location()
            except Exception:  # pragma: no cover
                pass
            if name in reg.module_dict:
                found.append(f'{scope}.{name}')
                break
    return found


def explain_exception(exc: BaseException) -> Optional[str]:
    """One line for a user error raised while building or running, else
    None."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().strip('"').strip("'")
    first = text.splitlines()[0] if text else ''
    if isinstance(exc, KeyError) and 'registry' in first and \
            'is not in the' in first:
        # "class `X` in mmregion/models/...: Foo is not in the mmregion::model
        # registry. Please check ..." -> keep the informative part
        core = first.split('. Please check')[0]
        obj_type = core.split(' is not in the')[0].split(':')[-1].strip()
        alts = [a for a in _scoped_alternatives(obj_type) if a != obj_type]
        hint = f'; did you mean {" or ".join(alts)}?' if alts else ''
        return f'unknown type in config: {core}{hint}'
    if isinstance(exc, FileNotFoundError):
        return f'file not found: {first}'
    if isinstance(exc, ValueError) and first.startswith(
            'loaded state dict') and 'parameter group' in first:
        # torch's Optimizer.load_state_dict during mmengine's resume
        return ('--resume: the checkpoint\'s optimizer has other parameter '
                'groups than the model of this config (written by another '
                'method or config?); resume with the config that wrote it, '
                'or start from its weights with load_from=CHECKPOINT '
                '(no --resume)')
    return None


def run_cli(main, argv: Optional[Iterable[str]] = None) -> None:
    """Run ``main``; print user errors as one line and exit with status 1."""
    try:
        main(argv)
    except (UserError, KeyError, FileNotFoundError, ValueError) as e:
        line = explain_exception(e)
        if line is None:
            raise
        print(f'error: {line}', file=sys.stderr)
        sys.exit(1)


def run_tool(main: Callable[[Optional[Sequence[str]]], Any],
             argv: Optional[Sequence[str]] = None) -> Any:
    """Run a tool's ``main``; bad input ends as ``error: ...`` + exit 1.

    ``ValueError`` (incl. :class:`InputError`), ``UserError``, ``OSError``
    and ``RuntimeError`` are printed as one line on stderr (their message
    names the file or entry); anything else keeps its traceback.
    """
    try:
        return main(argv)
    except (UserError, ValueError, OSError, RuntimeError) as e:
        line = ' '.join(str(e).split()) or type(e).__name__
        print(f'error: {line}', file=sys.stderr)
        sys.exit(1)


def _first_slurm_host(nodelist: str) -> str:
    """First host of a SLURM node list (``scontrol show hostnames``).

    ``scontrol`` is used when it is installed; otherwise the common forms
    are expanded here: ``node1``, ``node1,node2``, ``gpu-[03-05,9],cpu1``.
    """
    import shutil
    import subprocess
    if shutil.which('scontrol'):
        out = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                             capture_output=True,
                             text=True,
                             check=False)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    first = nodelist.strip()
    depth, end = 0, len(first)
    for i, ch in enumerate(first):  # the first top-level comma
        depth += (ch == '[') - (ch == ']')
        if ch == ',' and depth == 0:
            end = i
            break
    first = first[:end]
    if '[' in first:
        prefix, ranges = first.split('[', 1)
        start = ranges.rstrip(']').split(',')[0].split('-')[0]
        first = prefix + start
    return first


def slurm_dist_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The torch ``env://`` variables of a task started by ``srun``.

    mmengine derives them the same way for ``--launcher slurm`` but then
    calls ``torch.cuda.set_device``, so on CPU-only nodes we set them
    ourselves: ``RANK`` = ``SLURM_PROCID``, ``WORLD_SIZE`` =
    ``SLURM_NTASKS``, ``LOCAL_RANK`` = ``SLURM_LOCALID``, ``MASTER_ADDR`` =
    the first node of ``SLURM_NODELIST`` and ``MASTER_PORT`` = 29500 unless
    already set (a ``MASTER_ADDR``/``MASTER_PORT`` in the environment wins,
    as in mmengine).

    Args:
        environ (dict, optional): Defaults to ``os.environ``.

    Returns:
        dict[str, str]: The five variables.

    Raises:
        UserError: A SLURM variable is missing (not started by ``srun``).
    """
    env = os.environ if environ is None else environ
    missing = [
        k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
        if not env.get(k)
    ]
    if missing:
        raise UserError(
            f'--launcher slurm needs {", ".join(missing)} in the environment'
            ' (start the job with srun, e.g. tools/slurm_train.sh)')
    return dict(
        RANK=env['SLURM_PROCID'],
        WORLD_SIZE=env['SLURM_NTASKS'],
        LOCAL_RANK=env.get('SLURM_LOCALID', '0'),
        MASTER_ADDR=env.get('MASTER_ADDR')
        or _first_slurm_host(env['SLURM_NODELIST']),
        MASTER_PORT=env.get('MASTER_PORT') or '29500')


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch``/``slurm`` work without a GPU (gloo).

    mmengine assumes NCCL and ``torch.cuda.set_device``; on a CPU machine we
    start the gloo process group ourselves (mmengine then skips its own
    ``init_dist``) and let DDP wrap a CPU module. With ``slurm`` the
    ``env://`` variables come from ``SLURM_*`` (:func:`slurm_dist_env`).

    Raises:
        UserError: the launcher's environment variables are missing.
    """
    import torch
    if launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        if launcher == 'slurm':
            os.environ.update(slurm_dist_env())
        missing = [
            k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
            if k not in os.environ
        ]
        if missing and launcher in ('pytorch', 'slurm'):
            raise UserError(
                f'--launcher {launcher} needs {", ".join(missing)} in the '
                'environment (start it with tools/dist_train.sh or torchrun;'
                ' --launcher slurm with srun)')
        dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
