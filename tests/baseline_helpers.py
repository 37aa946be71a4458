"""A network's layers as a flat list of tokens, to compare with a table transcribed from its source.

Tokens, in module registration order (the test files register layers in the
source's order; pools and resizes have no parameters and are left out):

    ("conv", cin, cout, kernel, stride, padding, bias)   padding: an int, or "same" for
                                                        TF 'SAME' on a strided conv (pad at the end)
    ("deconv", cin, cout, kernel, stride, bias)
    ("bn", channels)   ("relu",)   ("relu6",)   ("dropout", p)
    ("attention", heads, dropout)                       a softmax attention over all positions
"""

from __future__ import annotations

from torch import nn

from jointseg.models.nonlocal_unet import GlobalAggregation
from jointseg.models.tf_same import SamePad2d


def layer_tokens(model: nn.Module) -> list[tuple]:
    """The tokens of ``model`` (module docstring)."""
    rows: list[tuple] = []
    same_pad = False
    for m in model.modules():
        if isinstance(m, SamePad2d):
            same_pad = True
        elif isinstance(m, nn.Conv2d):
            pad = "same" if same_pad else m.padding[0]
            rows.append(("conv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], pad, m.bias is not None))
            same_pad = False
        elif isinstance(m, nn.ConvTranspose2d):
            rows.append(("deconv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            rows.append(("bn", m.num_features))
        elif isinstance(m, nn.ReLU6):
            rows.append(("relu6",))
        elif isinstance(m, nn.ReLU):
            rows.append(("relu",))
        elif isinstance(m, nn.Dropout):
            rows.append(("dropout", m.p))
        elif isinstance(m, GlobalAggregation):
            rows.append(("attention", m.heads, m.dropout))
    return rows


def table_params(rows: list[tuple]) -> int:
    """Trainable parameters of a token table: conv weights and biases, BN scales and offsets."""
    total = 0
    for row in rows:
        if row[0] == "conv":
            _, cin, cout, k, _, _, bias = row
            total += k * k * cin * cout + bias * cout
        elif row[0] == "deconv":
            _, cin, cout, k, _, bias = row
            total += k * k * cin * cout + bias * cout
        elif row[0] == "bn":
            total += 2 * row[1]
    return total
