from .filters import box_iou, filter_boxes, nms_in_order
from .generate import generate_proposals, list_images
from .shard_io import (iter_shard_boxes, read_shard, read_shard_digest,
                       read_shard_failed, write_shard)
from .sources import (grid_proposals, random_proposals, selective_search,
                      selective_search_raw)
from .store import load_proposal_store
from .stores import InMemoryProposalStore, ProposalStore, ShardedProposalStore
from .writer import ProposalDirLock, ProposalWriter

__all__ = [
    'box_iou', 'filter_boxes', 'nms_in_order', 'generate_proposals',
    'list_images', 'grid_proposals', 'random_proposals', 'selective_search',
    'selective_search_raw', 'InMemoryProposalStore', 'ProposalStore',
    'ProposalWriter', 'ShardedProposalStore', 'load_proposal_store',
    'read_shard', 'write_shard', 'read_shard_digest', 'read_shard_failed',
    'iter_shard_boxes', 'ProposalDirLock'
]
