# Each module adds its own import line below.
from .filters import box_iou, clip_boxes, filter_boxes, nms_in_order  # noqa
from .generate import generate_proposals, list_images  # noqa
from .sources import (grid_proposals, random_proposals,  # noqa
                      selective_search, selective_search_raw)
from .store import (InMemoryProposalStore, ProposalStore,  # noqa
                    ProposalWriter, ShardedProposalStore, load_proposal_store)

__all__ = [
    'box_iou', 'clip_boxes', 'filter_boxes', 'nms_in_order',
    'generate_proposals', 'list_images', 'grid_proposals', 'random_proposals',
    'selective_search', 'selective_search_raw', 'InMemoryProposalStore',
    'ProposalStore', 'ProposalWriter', 'ShardedProposalStore',
    'load_proposal_store'
]
