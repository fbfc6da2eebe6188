# Each module adds its own import line below.
from .filters import box_iou, clip_boxes, filter_boxes, nms_in_order  # noqa
from .generate import generate_proposals, list_images  # noqa
from .shard_io import read_shard_digest  # noqa
from .shard_io import (iter_shard_boxes, read_shard, read_shard_failed,
                       write_shard)
from .sources import random_proposals  # noqa
from .sources import grid_proposals, selective_search, selective_search_raw
from .store import load_proposal_store  # noqa
from .stores import ProposalStore  # noqa
from .stores import InMemoryProposalStore, ShardedProposalStore
from .writer import ProposalDirLock, ProposalWriter  # noqa

__all__ = [
    'box_iou', 'clip_boxes', 'filter_boxes', 'nms_in_order',
    'generate_proposals', 'list_images', 'grid_proposals', 'random_proposals',
    'selective_search', 'selective_search_raw', 'InMemoryProposalStore',
    'ProposalStore', 'ProposalWriter', 'ShardedProposalStore',
    'load_proposal_store', 'read_shard', 'write_shard', 'read_shard_digest',
    'read_shard_failed', 'iter_shard_boxes', 'ProposalDirLock'
]
