"""self_pair: the control of self whose attention parameters match joint's (so that they differ by E2)."""

from __future__ import annotations

import pytest
import torch

from jointseg.attention import build
from jointseg.attention.heads import SelfHead


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_build(variant: str, channels: int, size: tuple[int, int], **options) -> torch.nn.Module:
    with torch.device("meta"):
        return build(variant, channels, size, **options)


def test_joint_and_self_at_the_paper_bottleneck():
    """The confound: 18.3 M attention parameters in joint, 8.9 M in self (C = 2112, 8 x 8)."""
    c, k, v, m = 2112, 1056, 1056, 15 * 15  # C' = C/2, value C/2 per branch, M = (2H-1)(2W-1)
    theta_phi = 2 * (c * k + k)
    out_bn = 2 * c
    self_count = theta_phi + (c * v + v) + v * c + out_bn
    predictors = 2 * (c * k + 2 * k + m * k)  # per branch: 1x1 conv (no bias) - BN(C') - ReLU, W_F (M x C')
    joint_count = theta_phi + predictors + (c * 2 * v + 2 * v) + 2 * v * c + out_bn
    assert n_params(meta_build("self", c, (8, 8))) == self_count == 8_928_480
    assert n_params(meta_build("joint", c, (8, 8))) == joint_count == 18_330_048


@pytest.mark.parametrize(
    "channels,size,options",
    [
        (2112, (8, 8), {}),
        (384, (8, 8), {}),
        (64, (8, 8), {}),
        (2112, (8, 8), {"key_reduction": 4, "value_reduction": 4}),
    ],
)
def test_self_pair_matches_joint_within_2_percent(channels, size, options):
    pair = meta_build("self_pair", channels, size, **options)
    joint = meta_build("joint", channels, size, **options)
    assert abs(n_params(pair) - n_params(joint)) <= 0.02 * n_params(joint)
    # the plain pair (C' = C/2) falls short by E2's offset tables: the matched width is wider
    assert pair.parts[0].query.out_channels > channels // options.get("key_reduction", 2)


def test_self_pair_at_the_paper_bottleneck():
    pair = meta_build("self_pair", 2112, (8, 8))
    assert n_params(pair) == 18_330_272  # joint: 18,330,048 (+0.001 %)
    assert [p.query.out_channels for p in pair.parts] == [1112, 1112]
    assert [p.value.out_channels for p in pair.parts] == [1056, 1056]  # its own C/2 value per head
    assert pair.branches == ("head1", "head2") and all(p.terms == ("E1",) for p in pair.parts)


def test_self_pair_is_two_self_heads_summed():
    torch.manual_seed(0)
    pair = build("self_pair", 16, (3, 4)).eval()
    x = torch.randn(2, 16, 3, 4)
    torch.testing.assert_close(pair(x), x)  # zero-initialised output BNs: starts as the identity
    for gate in pair.gates():
        torch.nn.init.normal_(gate)
    heads = list(pair.parts)
    assert all(isinstance(h, SelfHead) for h in heads) and heads[0].query is not heads[1].query
    torch.testing.assert_close(pair(x), x + sum(h(x) - x for h in heads))
    maps = pair.attention_map(x, (1, 2))
    assert maps.shape == (2, 2, 3, 4)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, 2))
    assert not torch.allclose(maps[:, 0], maps[:, 1])  # each head has its own theta and phi


def test_self_pair_refuses_terms():
    with pytest.raises(ValueError, match="E1 only"):
        build("self_pair", 16, (3, 3), terms=("E1", "E2"))
