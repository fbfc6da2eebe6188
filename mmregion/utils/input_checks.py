"""Checks of user-supplied inputs shared by the data sets and the tools.

One place decides what an image ``file_name`` may be and how a COCO-style
json is read, so that ``RegionDataset``, the proposal readers and
``tools/generate_proposals.py`` / ``tools/browse_proposals.py`` refuse the
same things with the same one-line messages (``docs/reliability.md``).
"""
import json
import os.path as osp
from typing import Any, List, Optional

from .errors import UserError

__all__ = [
    'InputError', 'check_file_name', 'read_json_file', 'coco_image_entries',
    'show_value'
]

# PATH_MAX on Linux: a longer file_name cannot be opened (and would make
# fixed-width key arrays huge)
MAX_FILE_NAME_CHARS = 4096


class InputError(UserError, ValueError):
    """Bad input data (a file or an entry of it), reported as one line.

    A ``ValueError`` for library callers and a ``UserError`` for the command
    line helpers of :mod:`mmregion.apis.cli` (printed without traceback).
    """


def show_value(value: Any, limit: int = 80) -> str:
    """``repr`` of a hostile value, kept on one line and short (ASCII).

    Args:
        value: Any value (a file name, a key, an error message...).
        limit (int): Characters kept. Defaults to 80.

    Returns:
        str: ``ascii(value)``, cut to ``limit`` characters plus ``'...'``.
    """
    text = ascii(value)
    return text if len(text) <= limit else text[:limit] + '...'


def _show(name: Any, limit: int = 120) -> str:
    return show_value(name, limit)


# how to allow such a name, for each entry point (tools/train.py has no
# flag: the data set and LoadProposals take a config key)
ALLOW_HINT = ('(allow it explicitly: --allow-unsafe-paths of '
              'generate_proposals.py / browse_proposals.py; in a training '
              'config allow_unsafe_paths=True of the dataset and of '
              'LoadProposals, e.g. --cfg-options '
              'train_dataloader.dataset.allow_unsafe_paths=True)')


def check_file_name(name: Any,
                    where: str,
                    allow_unsafe_paths: bool = False) -> str:
    """Check an image path that is relative to an image root.

    Always refused: a non-string, an empty string and a NUL byte (the OS
    cannot open it). Refused unless ``allow_unsafe_paths``: an absolute path
    (``/x``, ``\\\\x``, ``C:x``) and any ``..`` component, i.e. a name that
    makes a reader leave the image root.

    Args:
        name: The ``file_name`` / key to check.
        where (str): What holds it, for the message (e.g.
            ``'images[3] of data/ann.json'``).
        allow_unsafe_paths (bool): Accept absolute and ``..`` paths (an
            explicit opt-in: flag ``--allow-unsafe-paths`` of the tools,
            ``allow_unsafe_paths=True`` of the data set). Defaults to False.

    Returns:
        str: ``name`` unchanged.

    Raises:
        InputError: Naming ``where`` and the entry.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f'{where}: file_name must be a non-empty string, '
                         f'got {_show(name)}')
    if len(name) > MAX_FILE_NAME_CHARS:
        raise InputError(f'{where}: file_name {_show(name)} is '
                         f'{len(name)} characters long, more than a path '
                         f'can be ({MAX_FILE_NAME_CHARS})')
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        raise InputError(f'{where}: file_name {_show(name)} is not valid '
                         'UTF-8 (a lone surrogate)') from None
    if '\0' in name:
        raise InputError(f'{where}: file_name {_show(name)} contains a NUL '
                         'byte')
    if allow_unsafe_paths:
        return name
    parts = name.replace('\\', '/').split('/')
    if (name.startswith(('/', '\\')) or osp.isabs(name)
            or (len(name) > 1 and name[1] == ':')):
        raise InputError(
            f'{where}: file_name {_show(name)} is an absolute path; image '
            'names must be relative to the image root ' + ALLOW_HINT)
    if '..' in parts:
        raise InputError(
            f'{where}: file_name {_show(name)} contains "..", which leaves '
            'the image root ' + ALLOW_HINT)
    return name


def read_json_file(path: str, name: Optional[str] = None) -> Any:
    """``json.load`` with one-line errors naming the file.

    Args:
        path (str): The (local) file.
        name (str, optional): How to name it in messages (e.g. the remote
            path it was fetched from). Defaults to ``path``.

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: Not readable as UTF-8 json.
    """
    name = name or path
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        raise FileNotFoundError(f'json file {name} not found') from None
    except IsADirectoryError:
        raise InputError(f'{name} is a directory, expected a json file') \
            from None
    except UnicodeDecodeError as e:
        raise InputError(f'{name} is not UTF-8 text: {e.reason} at byte '
                         f'{e.start}') from None
    except json.JSONDecodeError as e:
        raise InputError(f'{name} is not valid json: {e.msg} at line '
                         f'{e.lineno} column {e.colno}') from None
    except RecursionError:
        raise InputError(f'{name} is not usable json: nested too deeply') \
            from None


def coco_image_entries(coco: Any,
                       name: str,
                       allow_unsafe_paths: bool = False,
                       need_id: bool = False) -> List[dict]:
    """The validated ``images`` list of a loaded COCO-style json.

    Every entry must be a dict with a ``file_name`` that passes
    :func:`check_file_name` (and an ``id`` when ``need_id``).

    Args:
        coco: The loaded json.
        name (str): The file, for messages.
        allow_unsafe_paths (bool): See :func:`check_file_name`.
        need_id (bool): Require ``id`` in every entry.

    Returns:
        list[dict]: ``coco['images']``.

    Raises:
        InputError: Naming the file and the first bad entry.
    """
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
        raise InputError(f'{name} is not a COCO-style json (no "images" '
                         'list at the top level)')
    images = coco['images']
    for i, im in enumerate(images):
        where = f'images[{i}] of {name}'
        if not isinstance(im, dict):
            raise InputError(f'{where} is not an object: {_show(im)}')
        if 'file_name' not in im:
            raise InputError(f'{where} has no "file_name"')
        check_file_name(im['file_name'], where, allow_unsafe_paths)
        if need_id and 'id' not in im:
            raise InputError(f'{where} has no "id"')
    return images
