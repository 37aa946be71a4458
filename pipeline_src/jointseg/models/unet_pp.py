"""UNet++ (Zhou et al., DLMIA 2018): ``Nest_Net`` of MrGiovanni/UNetPlusPlus, root
``model.py`` at commit 3e68792 (Keras), in PyTorch.

- widths 32, 64, 128, 256, 512 (``nb_filter``); node X^{i,0} is the encoder at
  stride 2^i, X^{i,j} = unit(concat[up(X^{i+1,j-1}), X^{i,0}, ..., X^{i,j-1}]);
- unit (``standard_unit``): two 3x3 convs with bias and ReLU, each followed by
  dropout 0.5; no BN;
- 2x2 max-pool down; up = 2x2 stride-2 transposed conv with bias to the node's width;
- head: 1x1 conv on X^{0,4}. The source's head is one sigmoid output; here it
  is a ``num_classes``-way softmax head (logits), as for every model of the study.
  Deep supervision (heads on X^{0,1..3}) is off, the source's default, so those
  heads do not exist.

Initial values as Keras 2.2 sets them: convs ``he_normal`` (truncated), the
transposed convs Glorot-uniform, biases zero. The source's L2 kernel penalty
(1e-4) is a loss term: every network of a study trains with the study's recipe.

9,041,601 parameters for 1 input channel and 1 class (the source's printed
total); 9,042,210 for RGB and 2 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import preset_settings
from .baseline import Baseline, keras_he_normal_

PRESETS: dict[str, dict] = {
    "paper": {"widths": (32, 64, 128, 256, 512), "dropout": 0.5},  # Nest_Net's nb_filter
    "small": {"widths": (8, 16, 32, 64, 128), "dropout": 0.5},  # a quarter of the widths, for CPUs
}


def standard_unit(cin: int, cout: int, dropout: float) -> nn.Sequential:
    """Two 3x3 conv (bias) - ReLU - dropout; the source's ``standard_unit``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


def node_order(depth: int) -> list[tuple[int, int]]:
    """Nodes (i, j) in the order ``Nest_Net`` builds them: each new encoder node, then its diagonal."""
    return [(k - j, j) for k in range(depth) for j in range(k + 1)]


class UNetPlusPlus(Baseline):
    """UNet++ of a preset (module docstring); ``forward`` returns the head's logits."""

    name = "unet_pp"

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
        cfg = preset_settings(PRESETS, preset, "UNet++", overrides)
        widths, dropout = tuple(cfg["widths"]), float(cfg["dropout"])
        self.depth = len(widths)
        self.setup(attention, input_size, 2 ** (self.depth - 1))
        # the source's names (conv{i+1}_{j+1}, up{i+1}{j+1}) in its layer order
        self.layers = nn.ModuleDict()
        for i, j in node_order(self.depth):
            if j == 0:
                self.layers[f"conv{i + 1}_1"] = standard_unit(
                    in_channels if i == 0 else widths[i - 1], widths[i], dropout
                )
            else:
                self.layers[f"up{i + 1}{j + 1}"] = nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                self.layers[f"conv{i + 1}_{j + 1}"] = standard_unit((j + 1) * widths[i], widths[i], dropout)
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self._init_like_keras()

    def _init_like_keras(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                keras_he_normal_(m.weight)
            elif isinstance(m, nn.ConvTranspose2d):
                nn.init.xavier_uniform_(m.weight)
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check_size(tuple(x.shape[-2:]))
        out: dict[tuple[int, int], Tensor] = {}
        for i, j in node_order(self.depth):
            if j == 0:
                out[i, 0] = self.layers[f"conv{i + 1}_1"](x if i == 0 else F.max_pool2d(out[i - 1, 0], 2))
            else:
                up = self.layers[f"up{i + 1}{j + 1}"](out[i + 1, j - 1])
                merged = torch.cat([up] + [out[i, k] for k in range(j)], dim=1)
                out[i, j] = self.layers[f"conv{i + 1}_{j + 1}"](merged)
        return self.head(out[0, self.depth - 1])
