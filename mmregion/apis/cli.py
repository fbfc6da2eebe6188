"""Helpers shared by ``tools/train.py`` and ``tools/test.py``.

They turn the usual user mistakes (a config path that does not exist, a
``--cfg-options`` key that is not in the config, an unknown ``type=``) into
one clear line instead of a deep traceback.
"""
import argparse
import contextlib
import difflib
import os
import os.path as osp
import sys
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple)

from mmengine.config import Config, ConfigDict, DictAction

from mmregion.utils.errors import UserError

__all__ = [
    'load_config', 'check_cfg_options', 'explain_exception',
    'setup_cpu_distributed', 'slurm_dist_env', 'sync_bn_to_bn',
    'add_cfg_options_args', 'apply_cfg_options', 'run_cli', 'run_tool',
    'check_config_variables', 'explain_downloads', 'check_config_values'
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
            such key (they are added, as mmengine does), except a key close
            to an existing one (a typo), which always raises. Defaults to
            True.

    Returns:
        list[str]: Warning lines (empty when every key exists).

    Raises:
        UserError: ``strict`` (or a close match exists) and a key path does
            not exist, naming the first missing component and close matches.
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
                # a near miss of an existing key (dept/depth) is a typo:
                # adding it would train with the default or fail later, deep
                # in a module's constructor (init_cfg/norm_cfg is not one)
                typo = difflib.get_close_matches(part, keys, n=1, cutoff=0.8)
                if strict or typo:
                    raise UserError(msg)
                warnings.append(f'{msg} (added as a new key; '
                                '--strict-cfg-options makes this an error)')
                break
            node = node[int(part)] if isinstance(node,
                                                 (list, tuple)) else node[part]
            done.append(part)
    return warnings


# top-level keys that mmengine's Runner (or our tools) read themselves
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'runner_type', 'custom_imports', 'sync_bn',
    'find_unused_parameters', 'compile', 'strategy', 'cfg', 'vis_backends'
})


def _paths_with_value(node: Any, value: Any, prefix: str = '') -> List[str]:
    """Key paths under ``node`` whose value is ``value`` (a string: or
    starts with it, as ``data_root + 'annotations/...'``)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    for key, child in items:
        path = f'{prefix}{key}'
        if isinstance(child, (dict, list, tuple)):
            found += _paths_with_value(child, value, path + '.')
        elif type(child) is type(value) and (child == value or isinstance(
                value, str) and len(value) > 2 and child.startswith(value)):
            found.append(path)
    return found


def check_config_variables(cfg: Config, options: Optional[Dict[str,
                                                               Any]]) -> None:
    """Refuse ``--cfg-options`` on a top-level variable already copied.

    ``data_root = 'data/coco/'`` in a config file is a Python variable: its
    value is copied into ``train_dataloader.dataset.data_root`` etc. when
    the file is read, so changing it afterwards changes nothing (mmengine
    sets it silently and the run uses the old data).

    Args:
        cfg (Config): The loaded config.
        options (dict, optional): Parsed ``--cfg-options``.

    Raises:
        UserError: Naming the keys that hold the copied value (to set
            instead).
    """
    for key, new in (options or {}).items():
        if '.' in key or key in RUNNER_KEYS or key not in cfg:
            continue
        old = cfg[key]
        if not isinstance(old, (str, int, float)) or isinstance(old, bool):
            continue
        used = [p for p in _paths_with_value(cfg._cfg_dict, old) if p != key]
        if used:
            shown = ', '.join(used[:4]) + (', ...' if len(used) > 4 else '')
            raise UserError(
                f'--cfg-options {key}={new}: "{key}" is a variable of the '
                'config file, already copied where the file uses it, so '
                f'changing it changes nothing; set the keys that hold its '
                f'value instead: {shown} (e.g. --cfg-options {used[0]}=...)')


# keys whose value must be a positive int wherever they appear in a config
# (a string or 0 used to fail deep in a constructor: `feat_dim='128'` a
# TypeError of torch.empty, `num_queries=0` an IndexError)
POSITIVE_INT_KEYS = frozenset({
    'feat_dim', 'num_queries', 'queue_len', 'img_queue_len',
    'region_queue_len', 'max_iters', 'max_epochs', 'batch_size'
})
# keys whose value must be a finite number >= 0 (a string lr used to fail
# in torch's optimizer with an unrelated TypeError)
NUMBER_KEYS = frozenset({'lr', 'weight_decay'})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_config_values(cfg: Any, prefix: str = '') -> None:
    """Refuse a value of the wrong type or range for a few well-known keys.

    Every key named in :data:`POSITIVE_INT_KEYS` must be an int >= 1 and
    every key of :data:`NUMBER_KEYS` a finite number >= 0, wherever it is in
    the config (``model.feat_dim``, ``optim_wrapper.optimizer.lr``,
    ``train_cfg.max_iters``, ...). Checked at the config boundary, before
    anything is built.

    Args:
        cfg (Config | dict | list): The merged config (or a part of it).
        prefix (str): Key path of ``cfg`` (for messages).

    Raises:
        UserError: Naming the key path, the value and what it must be.
    """
    import math
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    for key, value in items:
        path = f'{prefix}{key}'
        if key in POSITIVE_INT_KEYS and value is not None and not (
                _is_number(value) and value == int(value) and value >= 1):
            raise UserError(
                f'config key {path} = {value!r} ({type(value).__name__}): '
                'must be an int >= 1 (set it with --cfg-options '
                f'{path}=N)')
        if key in NUMBER_KEYS and value is not None and not (
                _is_number(value) and math.isfinite(value) and value >= 0):
            raise UserError(
                f'config key {path} = {value!r} ({type(value).__name__}): '
                'must be a finite number >= 0 (set it with --cfg-options '
                f'{path}=X)')
        if isinstance(value, (dict, list, tuple)):
            check_config_values(value, path + '.')


def add_cfg_options_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options`` and ``--strict-cfg-options`` to ``parser``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into the config file. A key that '
        'is not in the config is added (as mmengine does) with a warning; '
        'one close to an existing key (a typo) is an error.')
    parser.add_argument(
        '--strict-cfg-options',
        action='store_true',
        help='make a --cfg-options key that is not in the config an error')


def apply_cfg_options(cfg: Config, args: argparse.Namespace) -> Config:
    """Check and merge ``args.cfg_options`` into ``cfg`` (in place).

    Keys that are not in the config are printed as warnings on stderr (or,
    with ``args.strict_cfg_options`` or when close to an existing key, raise
    :class:`UserError`); a top-level variable whose value the config already
    copied raises too (:func:`check_config_variables`).
    """
    options = getattr(args, 'cfg_options', None)
    check_config_variables(cfg, options)
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
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        if len(lines) > 1 and 'Original Traceback' in str(exc):
            # re-raised by torch from a DataLoader worker: the message is
            # the last line of the worker's traceback ("pkg.Error: msg")
            return lines[-1].split(': ', 1)[-1]
        return lines[0] if lines else type(exc).__name__
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
    if isinstance(exc, FloatingPointError) and first.startswith('Non-finite'):
        # the numerical guards (FiniteCheckOptimWrapper, the checkpoint
        # hook): their message names the loss/tensor, the iteration and
        # the resume command
        return ' '.join(text.split())
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
    """Run ``main``; print user errors as one line and exit with status 1.

    Known error classes (:class:`UserError` and the errors
    :func:`explain_exception` recognises, a training guard's
    ``FloatingPointError``) end as one ``error: ...`` line on stderr, with
    no traceback; ``MMREGION_DEBUG=1`` in the environment re-raises them
    (full traceback). Anything else keeps its traceback.
    """
    from mmregion.apis.quiet_runner import debug_mode
    try:
        main(argv)
    except (UserError, KeyError, FileNotFoundError, ValueError,
            FloatingPointError) as e:
        line = explain_exception(e)
        if line is None or debug_mode():
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


DOWNLOAD_PREFIXES = ('http://', 'https://', 'torchvision://')


def _checkpoint_urls(node: Any, prefix: str = '') -> List[Tuple[str, str]]:
    """(key path, URL) of every checkpoint in ``node`` read over the
    network (``init_cfg.checkpoint``, ``load_from`` and the like)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    for key, child in items:
        path = f'{prefix}{key}'
        if isinstance(child, (dict, list, tuple)):
            found += _checkpoint_urls(child, path + '.')
        elif isinstance(child, str) and child.startswith(DOWNLOAD_PREFIXES) \
                and ('checkpoint' in str(key) or key in ('load_from',
                                                         'pretrained')):
            found.append((path, child))
    return found


def _download_url(name: str) -> str:
    if name.startswith('torchvision://'):
        from mmengine.runner.checkpoint import get_torchvision_models
        return get_torchvision_models().get(name[len('torchvision://'):], name)
    return name


@contextlib.contextmanager
def explain_downloads(cfg: Config) -> Iterator[None]:
    """Turn a failed checkpoint download into one line naming the fix.

    An offline machine fails deep in mmengine's checkpoint loader with a
    ``URLError``; this names the checkpoint(s) of the config that are
    downloaded, where torch's cache expects each file, and the key to point
    at a local copy instead.

    Raises:
        UserError: When the body raises a network error (``URLError``,
            ``ConnectionError``, ``TimeoutError``, ``http.client``
            errors).
    """
    import http.client
    import urllib.error
    try:
        yield
    except (urllib.error.URLError, ConnectionError, TimeoutError,
            http.client.HTTPException) as e:
        import torch.hub
        cache = osp.join(torch.hub.get_dir(), 'checkpoints')
        keys: Dict[str, List[str]] = {}
        for path, name in _checkpoint_urls(cfg._cfg_dict):
            # keys the runner reads (not the file's variables, copied there)
            if path.split('.')[0] in RUNNER_KEYS:
                keys.setdefault(name, []).append(path)
        fixes = []
        for name, paths in keys.items():
            url = _download_url(name)
            fname = osp.basename(url.split('?')[0])
            if osp.isfile(osp.join(cache, fname)):
                continue
            fixes.append(f'download {url} to {osp.join(cache, fname)} (or '
                         'set --cfg-options ' + ' '.join(f'{p}=<local .pth>'
                                                         for p in paths) + ')')
        if not fixes:
            raise
        raise UserError(f'cannot download a checkpoint ({e}); this machine '
                        'looks offline: ' + '; '.join(fixes)) from None


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


SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'mmdet.SyncBN', 'mmpretrain.SyncBN',
                 'mmengine.SyncBN', 'mmcv.SyncBN', 'mmcv.MMSyncBN')


def sync_bn_to_bn(cfg: Any) -> int:
    """Turn every SyncBN ``norm_cfg`` of ``cfg`` into BN (in place).

    torch's ``SyncBatchNorm`` only runs on CUDA tensors once a process group
    exists; on a CPU machine BN is the nearest working layer (statistics of
    each process's own batch). A top-level ``sync_bn`` (mmengine converts
    every BN of the model to SyncBN with it) is removed too.

    Args:
        cfg (Config | dict | list): The config or a part of it.

    Returns:
        int: How many entries were changed.
    """
    changed = 0
    if isinstance(cfg, Config):
        if cfg.get('sync_bn'):
            cfg.sync_bn = None
            changed += 1
        return changed + sync_bn_to_bn(cfg._cfg_dict)
    if isinstance(cfg, dict):
        if cfg.get('type') in SYNC_BN_TYPES:
            cfg['type'] = 'BN'
            changed += 1
        for value in cfg.values():
            changed += sync_bn_to_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            changed += sync_bn_to_bn(value)
    return changed


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch``/``slurm`` work without a GPU (gloo).

    mmengine assumes NCCL and ``torch.cuda.set_device``; on a CPU machine we
    start the gloo process group ourselves (mmengine then skips its own
    ``init_dist``) and let DDP wrap a CPU module; SyncBN becomes BN
    (:func:`sync_bn_to_bn`, one line on stdout says so). With ``slurm`` the
    ``env://`` variables come from ``SLURM_*`` (:func:`slurm_dist_env`).

    Raises:
        UserError: the launcher's environment variables are missing.
    """
    import torch
    if launcher == 'none' or torch.cuda.is_available():
        return
    n_sync = sync_bn_to_bn(cfg)
    if n_sync and int(os.environ.get('RANK', '0')) == 0:
        print(f'mmregion: no GPU: {n_sync} SyncBN norm_cfg(s) in the config '
              'become BN (SyncBN works on GPU modules only); each process '
              'normalises over its own batch')
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
