"""Non-local U-Net (Wang, Zou, Shen, Ji, AAAI 2020): the 2-D form of
divelab/Non-local-U-Nets (``network.py``, ``utils/attention.py``, TensorFlow,
3-D), with its ``configure.py`` defaults (depth 3, 32 filters).

- convs without bias, TF 'SAME' padding (a strided 3x3 conv on an even size
  pads the bottom/right row only); initial conv 3x3 to ``filters``;
- encoder: per level one pre-activation residual block (BN-ReLU6, then a 1x1
  projection shortcut of the activated input, 3x3 conv (stride 1, then 2),
  BN-ReLU6, 3x3 conv, + shortcut) with widths filters * 2^i;
- bottom: BN-ReLU6, a global aggregation block (2 heads, key/value/output
  width = the deepest width, SAME), + the deepest encoder output;
- first up level: BN-ReLU6; shortcut = 3x3 stride-2 transposed conv; a global
  aggregation block (1 head) whose query is a 3x3 stride-2 transposed conv
  (bias) of the input and whose keys/values are the input's; + shortcut, + skip,
  a residual block;
- other up levels: 3x3 stride-2 transposed conv, + skip, a residual block;
- output: BN-ReLU6, dropout 0.5, 1x1 conv with bias.

A global aggregation block (``multihead_attention_3d``): q, k, v 1x1 convs
with bias (q a transposed conv for 'UP'), heads split off the channels,
q * (C_k / heads)^-1/2, softmax over all key positions, dropout 0.5 on the
attention weights while training, heads concatenated, 1x1 output conv with bias.
BN: TF momentum 0.997 (PyTorch 0.003), epsilon 1e-5. Conv weights start as TF's
``truncated_normal_initializer()`` (stddev 1, truncated at 2), biases 0.

653,602 parameters for RGB and 2 classes (depth 3, 32 filters).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import preset_settings
from .baseline import Baseline, truncated_normal_
from .tf_same import SamePad2d

PRESETS: dict[str, dict] = {
    "paper": {"depth": 3, "filters": 32, "bn_momentum": 0.003},  # configure.py; TF decay 0.997
    "small": {"depth": 3, "filters": 8, "bn_momentum": 0.003},
}


def bn_relu6(channels: int, momentum: float) -> nn.Sequential:
    """The source's ``BN_ReLU``: batch norm then ReLU6."""
    return nn.Sequential(nn.BatchNorm2d(channels, eps=1e-5, momentum=momentum), nn.ReLU6())


def tf_conv(cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = False) -> nn.Module:
    """``Conv3D`` in 2-D: TF 'SAME' padding (a stride-2 3x3 conv pads (0, 1) on an even size)."""
    if stride == 1 or kernel == 1:
        return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0, bias=bias)
    return nn.Sequential(SamePad2d(kernel, stride), nn.Conv2d(cin, cout, kernel, stride=stride, bias=bias))


class TFDeconv(nn.Module):
    """``Deconv3D`` in 2-D: 3x3 stride-2 transposed conv, TF 'SAME' (output exactly twice the input).

    TF's transposed conv is the gradient of a 'SAME' conv whose padding is all at
    the end, i.e. PyTorch's unpadded transposed conv with its last row and column cut.
    """

    def __init__(self, cin: int, cout: int, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)[..., : 2 * x.shape[-2], : 2 * x.shape[-1]]


class ResidualBlock(nn.Module):
    """``_residual_block``: BN-ReLU6, [1x1 projection], 3x3 conv, BN-ReLU6, 3x3 conv, + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, project: bool, momentum: float) -> None:
        super().__init__()
        self.norm1 = bn_relu6(cin, momentum)
        self.shortcut = tf_conv(cin, cout, 1, stride) if project else None
        self.conv1 = tf_conv(cin, cout, 3, stride)
        self.norm2 = bn_relu6(cout, momentum)
        self.conv2 = tf_conv(cout, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        shortcut = x if self.shortcut is None else self.shortcut(y)  # projection of the activated input
        return self.conv2(self.norm2(self.conv1(y))) + shortcut


class GlobalAggregation(nn.Module):
    """``multihead_attention_3d`` in 2-D; ``up``: the query is a stride-2 transposed conv (layer type UP)."""

    def __init__(self, cin: int, channels: int, heads: int, up: bool, dropout: float = 0.5) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"key/value width {channels} must be divisible by the number of heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.query = TFDeconv(cin, channels, bias=True) if up else nn.Conv2d(cin, channels, 1)
        self.key = nn.Conv2d(cin, channels, 1)
        self.value = nn.Conv2d(cin, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def _split(self, t: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, heads, H*W, C / heads): the channels split head-major, per sample."""
        n, c = t.shape[:2]
        return t.reshape(n, self.heads, c // self.heads, -1).transpose(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        q = self.query(x)
        n, c, h, w = q.shape
        k, v = self._split(self.key(x)), self._split(self.value(x))
        drop = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(self._split(q), k, v, dropout_p=drop, scale=(c // self.heads) ** -0.5)
        return self.out(o.transpose(2, 3).reshape(n, c, h, w))


class AttentionUp(nn.Module):
    """``_att_decoding_block_layer``: BN-ReLU6, deconv shortcut + attention (1 head), + skip, residual block."""

    def __init__(self, cin: int, cout: int, momentum: float) -> None:
        super().__init__()
        self.norm = bn_relu6(cin, momentum)
        self.shortcut = TFDeconv(cin, cout)
        self.attention_block = GlobalAggregation(cin, cout, heads=1, up=True)
        self.block = ResidualBlock(cout, cout, 1, project=False, momentum=momentum)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        y = self.norm(x)
        return self.block(self.attention_block(y) + self.shortcut(y) + skip)


class PlainUp(nn.Module):
    """``_decoding_block_layer``: deconv (no BN before it), + skip, residual block."""

    def __init__(self, cin: int, cout: int, momentum: float) -> None:
        super().__init__()
        self.deconv = TFDeconv(cin, cout)
        self.block = ResidualBlock(cout, cout, 1, project=False, momentum=momentum)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.block(self.deconv(x) + skip)


class NonLocalUNet(Baseline):
    """Non-local U-Net of a preset (module docstring)."""

    name = "nonlocal_unet"

    def __init__(
        self,
        preset: str = "small",
        in_channels: int = 3,
        num_classes: int = 2,
        attention: str = "none",
        attention_level: str | int = "bottleneck",
        input_size: tuple[int, int] = (64, 64),
        attention_options: dict | None = None,
        **overrides,
    ) -> None:
        super().__init__()
        cfg = preset_settings(PRESETS, preset, "Non-local U-Net", overrides)
        depth, f, mom = int(cfg["depth"]), int(cfg["filters"]), float(cfg["bn_momentum"])
        if depth < 2:
            raise ValueError(f"Non-local U-Net needs depth >= 2, got {depth}")
        self.setup(attention, input_size, 2 ** (depth - 1))
        widths = [f * 2**i for i in range(depth)]
        self.initial_conv = tf_conv(in_channels, f, 3)
        self.encoder = nn.ModuleList(
            ResidualBlock(f if i == 0 else widths[i - 1], widths[i], 1 if i == 0 else 2, True, mom)
            for i in range(depth)
        )
        self.bottom_norm = bn_relu6(widths[-1], mom)
        self.bottom_attention = GlobalAggregation(widths[-1], widths[-1], heads=2, up=False)
        self.decoder = nn.ModuleList(
            (AttentionUp if i == depth - 2 else PlainUp)(widths[i + 1], widths[i], mom)
            for i in reversed(range(depth - 1))
        )
        self.output_norm = bn_relu6(f, mom)
        self.output_dropout = nn.Dropout(0.5)
        self.head = nn.Conv2d(f, num_classes, 1)
        for m in self.modules():  # tf.truncated_normal_initializer(): stddev 1, truncated at 2
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                truncated_normal_(m.weight, 1.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check_size(tuple(x.shape[-2:]))
        y = self.initial_conv(x)
        skips = []
        for block in self.encoder:
            y = block(y)
            skips.append(y)
        y = self.bottom_attention(self.bottom_norm(y)) + skips[-1]
        for up, skip in zip(self.decoder, reversed(skips[:-1])):
            y = up(y, skip)
        return self.head(self.output_dropout(self.output_norm(y)))
