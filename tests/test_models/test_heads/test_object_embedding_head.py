import re

import torch
import torch.nn as nn
from mmengine.runner.checkpoint import load_state_dict

from mmregion.models.heads import ObjectEmbeddingHead
from mmregion.models.utils import MomentumTeacher


def _sequential(head: ObjectEmbeddingHead) -> nn.Sequential:
    """The pre-issue-13 layout: Linear/ReLU alternating in ``mlp``."""
    layers = []
    for i, linear in enumerate(head.layers):
        layers.append(linear)
        if i < head.num_layers - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def test_same_outputs_as_the_former_sequential_mlp():
    torch.manual_seed(0)
    for num_layers in (1, 2, 3):
        head = ObjectEmbeddingHead(8, 16, 4, num_layers=num_layers)
        x = torch.randn(2, 5, 8)
        assert torch.equal(head(x), _sequential(head)(x.clone()))


def test_former_checkpoint_keys_load_online_and_teacher():
    torch.manual_seed(0)

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.embed_head = ObjectEmbeddingHead(8, 16, 4)
            self.teacher = MomentumTeacher(
                dict(embed_head=self.embed_head), momentum=0.1)

    src, dst = Model(), Model()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)

    def old_name(key):
        return re.sub(r'embed_head\.layers\.(\d)\.',
                      lambda m: f'embed_head.mlp.{2 * int(m.group(1))}.', key)

    old = {old_name(k): v for k, v in src.state_dict().items()}
    assert 'teacher.module.embed_head.mlp.2.weight' in old
    load_state_dict(dst, old, strict=True)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    dst.load_state_dict(src.state_dict())  # the new keys load as well
