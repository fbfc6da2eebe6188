"""Rename the weights of official checkpoints to mmregion / OpenMMLab names.

Used by ``tools/model_converters/{ccop,plrc,detreg}_to_mmregion.py``. A
conversion is an ordered list of :class:`Rule`\\ s; the first rule whose
pattern matches a source key decides: a replacement renames the key, ``None``
marks a known key that this target does not use (counted as *skipped*). A key
that no rule matches is *unknown*. :class:`ConversionReport` turns the
outcome into one summary line.

Checkpoints are read with the project's safe loader
(:func:`mmregion.utils.load_checkpoint_safely`) and written atomically
(:func:`mmregion.utils.atomic_io.atomic_save`).
"""
import argparse
import re
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch

from mmregion.utils.atomic_io import atomic_save
from mmregion.utils.checkpoint import (UnsafeCheckpointError,
                                       load_checkpoint_safely)

__all__ = [
    'Rule', 'ConversionReport', 'read_official_state_dict', 'convert_keys',
    'd2_resnet_rules', 'torchvision_resnet_rules', 'd2_fpn_rules',
    'add_num_batches_tracked', 'save_converted', 'converter_arg_parser',
    'nonfinite_keys', 'run_conversion'
]

Replacement = Union[None, str, Callable[[re.Match], str]]


@dataclass
class Rule:
    """A source-key pattern and what it becomes.

    Args:
        pattern (str): Regular expression matched at the start of the key
            (``re.match``) and covering the whole key.
        repl (None | str | callable): Target name (``re`` template such as
            ``r'backbone.\\1'`` or a function of the match); ``None`` skips
            the key (known, not used by this target).
        why (str): What skipped keys are (shown in the report).
        transform (callable, optional): Applied to the tensor of a renamed
            key (e.g. a transpose where the layouts differ).
    """
    pattern: str
    repl: Replacement
    why: str = ''
    transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern + r'\Z')


@dataclass
class ConversionReport:
    """What a conversion did with every source key."""
    converted: Dict[str, str] = field(default_factory=dict)
    skipped: Dict[str, List[str]] = field(default_factory=dict)
    unknown: List[str] = field(default_factory=list)

    def summary(self, name: str = 'converted') -> str:
        """One line: counts, the skipped groups and the unknown keys."""
        parts = [f'{name}: {len(self.converted)} keys converted']
        if self.skipped:
            groups = '; '.join(f'{why} {len(keys)}'
                               for why, keys in self.skipped.items())
            parts.append(f'{sum(map(len, self.skipped.values()))} skipped '
                         f'({groups})')
        if self.unknown:
            head = ', '.join(self.unknown[:5])
            more = f' (+{len(self.unknown) - 5} more)' if len(
                self.unknown) > 5 else ''
            parts.append(f'{len(self.unknown)} unknown: {head}{more}')
        else:
            parts.append('0 unknown')
        return ', '.join(parts)


def _to_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def read_official_state_dict(
    path: str, extra_safe_globals: Sequence[Any] = ()
) -> Dict[str, torch.Tensor]:  # noqa: E125
    """Load a checkpoint safely and return its flat model state dict.

    Accepts ``{'state_dict': ...}`` (OpenSelfSup / mmengine / PLRC),
    ``{'model': ...}`` (DETR-family / Detectron2) or a bare state dict; a
    DDP ``module.`` prefix is removed and numpy arrays become tensors.

    Args:
        path (str): Checkpoint file.
        extra_safe_globals (Sequence): Further types that the weights-only
            loader may rebuild for this file only (e.g. ``argparse.Namespace``
            of DETR-family checkpoints, a plain attribute container).

    Raises:
        ValueError: The file holds no state dict, or it was refused by the
            safe loader (the message names the file and the refused type).
    """
    try:
        with torch.serialization.safe_globals(list(extra_safe_globals)):
            ckpt = load_checkpoint_safely(path, map_location='cpu')
    except UnsafeCheckpointError as e:
        raise ValueError(str(e)) from None
    except (RuntimeError, EOFError, OSError) as e:  # truncated / not torch
        if isinstance(e, FileNotFoundError):
            raise ValueError(f'checkpoint {path} does not exist') from None
        first = (str(e).strip().splitlines() or [''])[0]
        raise ValueError(f'cannot read checkpoint {path}: '
                         f'{type(e).__name__}: {first}') from None
    state = None
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
        else:
            if ckpt and all(isinstance(k, str) for k in ckpt) and any(
                    torch.is_tensor(v) or isinstance(v, np.ndarray)
                    for v in ckpt.values()):
                state = ckpt
    if not state:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)
        raise ValueError(f'{path}: no state dict found (expected a '
                         f'"state_dict" or "model" entry; found {found})')
    out = {}
    for key, value in state.items():
        value = _to_tensor(value)
        if not torch.is_tensor(value):
            continue
        out[key[len('module.'):] if key.startswith('module.') else key] = \
            value
    return out


def convert_keys(
        state: Dict[str, torch.Tensor], rules: Iterable[Rule]
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Apply ``rules`` to every key of ``state``.

    Returns:
        tuple: ``(converted state dict, report)``.

    Raises:
        ValueError: Two source keys map to the same target key.
    """
    rules = list(rules)
    out: Dict[str, torch.Tensor] = {}
    report = ConversionReport()
    for key, value in state.items():
        for rule in rules:
            m = rule.regex.match(key)
            if m is None:
                continue
            if rule.repl is None:
                report.skipped.setdefault(rule.why or 'unused', []).append(key)
                break
            new = rule.repl(m) if callable(rule.repl) else m.expand(rule.repl)
            if new in out:
                raise ValueError(f'two source keys map to {new} '
                                 f'({report.converted.get(new)} and {key})')
            out[new] = value if rule.transform is None else \
                rule.transform(value)
            report.converted[new] = key
            break
        else:
            report.unknown.append(key)
    return out, report


def _stage(m: re.Match, group: int) -> int:
    return int(m.group(group)) - 1  # Detectron2 res2..res5 -> layer1..4


def d2_resnet_rules(src: str, dst: str) -> List[Rule]:
    """Detectron2 ResNet (``stem``, ``res2``-``res5``) -> torchvision/mm names.

    Args:
        src (str): Regex of the source prefix (e.g.
            ``r'backbone_q\\.bottom_up\\.'``).
        dst (str): Target prefix (e.g. ``'backbone.'`` or ``''``).
    """
    block = src + r'res([2-5])\.(\d+)\.'  # groups 1-2: stage, block

    def in_block(fmt: str) -> Callable[[re.Match], str]:
        # ``fmt`` is formatted with the groups after stage and block
        return lambda m: (f'{dst}layer{_stage(m, 1)}.{m.group(2)}.' + fmt.
                          format(*m.groups()[2:]))

    return [
        Rule(src + r'stem\.conv1\.norm\.(\w+)', dst + r'bn1.\1'),
        Rule(src + r'stem\.conv1\.weight', dst + 'conv1.weight'),
        Rule(block + r'conv([1-3])\.norm\.(\w+)', in_block('bn{0}.{1}')),
        Rule(block + r'conv([1-3])\.weight', in_block('conv{0}.weight')),
        Rule(block + r'shortcut\.norm\.(\w+)', in_block('downsample.1.{0}')),
        Rule(block + r'shortcut\.weight', in_block('downsample.0.weight')),
    ]


def torchvision_resnet_rules(src: str, dst: str) -> List[Rule]:
    """torchvision-style ResNet keys (the names mmdet/mmpretrain use).

    The classifier ``fc`` is skipped.
    """
    return [
        Rule(src + r'((?:conv1|bn1|layer[1-4])\..+)', dst + r'\1'),
        Rule(src + r'fc\.(weight|bias)', None, 'classifier fc'),
    ]


def d2_fpn_rules(src: str, dst: str) -> List[Rule]:
    """Detectron2 FPN (``fpn_lateral2..5``, ``fpn_output2..5``) -> mmdet FPN.

    mmdet's ``FPN`` holds ``lateral_convs.i`` / ``fpn_convs.i`` as
    ``ConvModule``\\ s (``conv`` + a norm named ``bn`` for BN configs); level
    ``i`` = Detectron2 stage ``i + 2``.
    """

    def rename(kind: str, part: str) -> Callable[[re.Match], str]:
        return lambda m: (f'{dst}{kind}.{int(m.group(1)) - 2}.{part}.'
                          f'{m.group(2)}')

    return [
        Rule(src + r'fpn_lateral(\d)\.norm\.(\w+)',
             rename('lateral_convs', 'bn')),
        Rule(src + r'fpn_lateral(\d)\.(weight|bias)',
             rename('lateral_convs', 'conv')),
        Rule(src + r'fpn_output(\d)\.norm\.(\w+)', rename('fpn_convs', 'bn')),
        Rule(src + r'fpn_output(\d)\.(weight|bias)',
             rename('fpn_convs', 'conv')),
    ]


def add_num_batches_tracked(
        state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Add ``num_batches_tracked = 0`` next to every ``running_mean``.

    Frozen-BN releases (DETR family) and Detectron2 exports carry no such
    entry; mmdet's ``ResNet`` has one per BN, so without it a strict load
    reports missing keys. Returns a new dict in the original order.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        out[key] = value
        if key.endswith('.running_mean'):
            nbt = key[:-len('running_mean')] + 'num_batches_tracked'
            if nbt not in state:
                out[nbt] = torch.tensor(0, dtype=torch.long)
    return out


def nonfinite_keys(state: Dict[str, Any]) -> List[str]:
    """Keys of the floating-point tensors of ``state`` that hold NaN/inf."""
    return [
        k for k, v in state.items() if isinstance(v, torch.Tensor)
        and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def save_converted(state: Dict[str, torch.Tensor],
                   path: str,
                   meta: Optional[dict] = None) -> None:
    """Write ``{'state_dict': state, 'meta': meta}`` atomically."""
    atomic_save(dict(state_dict=state, meta=dict(meta or {})), path)


def run_conversion(
    in_file: str,
    out_file: str,
    rules: Iterable[Rule],
    name: str,
    extra: Optional[Dict[str, torch.Tensor]] = None,
    extra_safe_globals: Sequence[Any] = ()
) -> ConversionReport:
    """Read ``in_file``, rename its keys with ``rules``, write ``out_file``.

    Args:
        in_file (str): Official checkpoint.
        out_file (str): Output, ``{'state_dict', 'meta'}`` (atomic write).
        rules (Iterable[Rule]): The conversion.
        name (str): Conversion name for the report and ``meta``.
        extra (dict, optional): Entries added to the output when absent.
        extra_safe_globals (Sequence): See :func:`read_official_state_dict`.

    Returns:
        ConversionReport: Also printed as one line.

    Raises:
        UserError: The file cannot be read or no key matched a rule.
    """
    from mmregion.utils.errors import UserError
    try:
        state = read_official_state_dict(in_file, extra_safe_globals)
    except ValueError as e:
        raise UserError(str(e)) from None
    out, report = convert_keys(state, rules)
    if not out:
        raise UserError(
            f'{in_file}: no key matched the {name} conversion (first keys: '
            f'{", ".join(list(state)[:5])}); is it the right checkpoint?')
    out = add_num_batches_tracked(out)
    for key, value in (extra or {}).items():
        out.setdefault(key, value)
    bad = nonfinite_keys(out)
    if bad:
        raise UserError(
            f'{in_file}: {len(bad)} tensor(s) hold NaN/inf (e.g. '
            f'{", ".join(bad[:3])}): the checkpoint is broken (a diverged '
            f'run?); nothing written to {out_file}')
    save_converted(
        out, out_file,
        dict(
            converted_from=in_file,
            conversion=name,
            num_converted=len(report.converted),
            num_unknown=len(report.unknown)))
    print(f'{report.summary(name)} -> {out_file}')
    return report


def converter_arg_parser(description: str,
                         targets: Sequence[str]) -> argparse.ArgumentParser:
    """The command line shared by the official-checkpoint converters."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('in_file', help='official checkpoint')
    parser.add_argument('out_file', help='converted checkpoint (.pth)')
    parser.add_argument(
        '--target',
        choices=list(targets),
        default=targets[0],
        help=f'what to write (default: {targets[0]}); "backbone": '
        'ResNet weights without prefix for init_cfg=dict(type="Pretrained"'
        ', checkpoint=OUT); "algorithm": the mmregion model state dict for '
        'load_from')
    return parser
