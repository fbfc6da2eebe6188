"""Opening proposals: :func:`load_proposal_store` picks the reader.

The package is split by concern (``docs/design.md``):

- :mod:`.format`: directory format, constants, digests, packed boxes;
- :mod:`.shard_io`: public shard API (``read_shard``/``write_shard``/...);
- :mod:`.stores`: the store interface and the sharded-directory reader;
- :mod:`.writer`: :class:`ProposalWriter` and the directory lock;
- :mod:`.adapters`: mmdet pickle and COCO json readers;
- :mod:`.safe_pickle`: the restricted unpickler of proposal pickles.
"""
import os.path as osp
from typing import Optional

from mmregion.utils.input_checks import InputError
from .adapters import load_coco_json_store, load_pickle_store
from .stores import ProposalStore, ShardedProposalStore

__all__ = ['load_proposal_store']


def load_proposal_store(path: str,
                        ann_file: Optional[str] = None,
                        cache_shards: int = 64,
                        allow_unsafe_paths: bool = False) -> ProposalStore:
    """Open proposals from a directory, an mmdet pickle or a COCO json.

    Args:
        path (str): A proposal directory (``meta.json`` + shards), an mmdet
            proposal pickle (``.pkl``/``.pickle``: a dict ``{file_name:
            boxes}`` or a list aligned with ``ann_file``'s images; values
            (N, 4|5) arrays, dicts or ``InstanceData`` with ``bboxes`` and
            optional ``scores``) or a COCO-style json (xywh ``annotations``,
            ``images[].file_name`` keys, as CCOP writes).
        ann_file (str, optional): COCO json giving the image order of a
            list-style pickle.
        cache_shards (int): LRU size of a sharded store.
        allow_unsafe_paths (bool): Accept absolute and ``..`` keys in a
            pickle or json (refused by default, see
            :func:`mmregion.utils.input_checks.check_file_name`).

    Returns:
        ProposalStore: The store.
    """
    path = str(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'Proposal file/directory {path} not found')
    if osp.isdir(path):
        return ShardedProposalStore(path, cache_shards=cache_shards)
    ext = osp.splitext(path)[1].lower()
    if ext in ('.pkl', '.pickle'):
        return load_pickle_store(path, ann_file, allow_unsafe_paths)
    if ext == '.json':
        return load_coco_json_store(path, allow_unsafe_paths)
    raise InputError(f'Unknown proposal format of {path}: expected a '
                     'directory from tools/generate_proposals.py, a .pkl/'
                     '.pickle (mmdet) or a .json (COCO-style) file')
