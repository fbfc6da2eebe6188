# Each module adds its own import line below.
from .object_embedding_head import ObjectEmbeddingHead  # noqa
from .dino_proj_head import DINOProjHead  # noqa
from .plrc_head import PLRCHead  # noqa
