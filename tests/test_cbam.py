"""CBAM against its source (Jongchan/attention-module MODELS/cbam.py) and at the joint block's place."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jointseg.attention import CBAM, build, has_attention_map
from jointseg.models import build_model, count_parameters

DACN_PARAMS = 48_840_260


class SourceCBAM(nn.Module):
    """Jongchan's CBAM(gate_channels, reduction_ratio=16, pool_types=['avg', 'max']), transcribed.

    ChannelGate: mlp = Flatten, Linear(C, C // 16), ReLU, Linear(C // 16, C);
    sum of mlp(avg_pool2d) and mlp(max_pool2d) over the whole map, sigmoid, x * scale.
    SpatialGate: ChannelPool = cat(max over channels, mean over channels); BasicConv(2, 1,
    7, padding 3, relu=False) = Conv2d(bias=False) + BatchNorm2d(1, eps=1e-5, momentum=0.01);
    sigmoid, x * scale.
    """

    def __init__(self, gate_channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(gate_channels, gate_channels // 16),
            nn.ReLU(),
            nn.Linear(gate_channels // 16, gate_channels),
        )
        self.conv = nn.Conv2d(2, 1, kernel_size=7, stride=1, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.size(2), x.size(3))
        avg = self.mlp(F.avg_pool2d(x, size, stride=size))
        mx = self.mlp(F.max_pool2d(x, size, stride=size))
        x_out = x * torch.sigmoid(avg + mx).unsqueeze(2).unsqueeze(3).expand_as(x)
        compress = torch.cat((torch.max(x_out, 1)[0].unsqueeze(1), torch.mean(x_out, 1).unsqueeze(1)), dim=1)
        return x_out * torch.sigmoid(self.bn(self.conv(compress)))


def cbam_params(c: int) -> int:
    """The source's parameter count: the MLP's two Linear layers (bias) + the 7x7 conv + BN(1)."""
    hidden = c // 16
    return (c * hidden + hidden) + (hidden * c + c) + 2 * 7 * 7 + 2


def copy_into_source(ours: CBAM) -> SourceCBAM:
    source = SourceCBAM(ours.channels)
    source.mlp[1].load_state_dict(ours.mlp[0].state_dict())
    source.mlp[3].load_state_dict(ours.mlp[2].state_dict())
    source.conv.load_state_dict(ours.spatial.state_dict())
    source.bn.load_state_dict(ours.spatial_norm.state_dict())
    return source


@pytest.mark.parametrize("train", [False, True])
def test_cbam_equals_the_source(train):
    torch.manual_seed(0)
    ours = build("cbam", 48, (6, 5))
    with torch.no_grad():  # non-trivial BN statistics and affine values
        ours.spatial_norm.running_mean.fill_(0.3)
        ours.spatial_norm.running_var.fill_(2.0)
        ours.spatial_norm.weight.fill_(1.5)
        ours.spatial_norm.bias.fill_(-0.2)
    source = copy_into_source(ours)
    x = torch.randn(3, 48, 6, 5)
    ours.train(train), source.train(train)
    torch.testing.assert_close(ours(x), source(x))
    torch.testing.assert_close(ours.spatial_norm.running_mean, source.bn.running_mean)  # momentum 0.01 both


def test_cbam_parameters_and_layers():
    block = build("cbam", 2112, (8, 8))
    assert sum(p.numel() for p in block.parameters()) == cbam_params(2112) == 559_912
    assert [type(m) for m in block.mlp] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (block.mlp[0].in_features, block.mlp[0].out_features, block.mlp[2].out_features) == (2112, 132, 2112)
    assert block.spatial.bias is None and block.spatial.kernel_size == (7, 7) and block.spatial.in_channels == 2
    assert block.spatial_norm.momentum == 0.01
    assert build("cbam", 40, (3, 3)).mlp[0].out_features == 2  # floor(40 / 16)
    with pytest.raises(ValueError, match="at least 16 channels"):
        build("cbam", 8, (3, 3))


def test_cbam_sits_where_the_joint_block_sits():
    with torch.device("meta"):  # no memory, no initialisation: the paper network's shapes only
        joint = build_model("denseunet", "paper", attention="joint", input_size=(256, 256))
        cbam = build_model("denseunet", "paper", attention="cbam", input_size=(256, 256))
    assert isinstance(cbam.attention, CBAM)
    assert (cbam.attention.channels, cbam.attention_grid) == (joint.attention.channels, joint.attention_grid)
    assert (cbam.attention.channels, cbam.attention_grid) == (2112, (8, 8))
    assert count_parameters(cbam) == DACN_PARAMS + 559_912


def test_cbam_has_no_attention_map():
    model = build_model("denseunet", "small", attention="cbam", attention_level=8, input_size=(64, 64))
    with pytest.raises(ValueError, match="no attention over positions"):
        model.attention_map(torch.randn(1, 3, 64, 64), (2, 2))
    assert not has_attention_map(model.attention)
    assert has_attention_map(build("joint", 8, (3, 3))) and has_attention_map(build("self_pair", 8, (3, 3)))
    assert not has_attention_map(build("none", 8, (3, 3))) and not has_attention_map(None)
    assert model.attention.gates() == []  # not an identity at initialisation: nothing to open
