"""What the cited baselines (UNet++, Attention U-Net, Non-local U-Net) share.

A cited baseline is its source's network: it takes no attention variant of
this study (``attention`` must be ``"none"``; ``attention_level`` and
``attention_options`` are accepted, because a study passes them to every
model, and ignored) and it accepts any input whose sides are divisible by its
total down-sampling factor; the study trains on fixed crops and infers with
the sliding window at the crop size.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def truncated_normal_(weight: Tensor, std: float) -> Tensor:
    """normal(0, std) truncated at two standard deviations (TF's and Keras' truncated normal)."""
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def keras_he_normal_(weight: Tensor) -> Tensor:
    """Keras 2.2's ``he_normal``: normal(0, sqrt(2 / fan_in)) truncated at two standard deviations."""
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    return truncated_normal_(weight, math.sqrt(2.0 / fan_in))


class Baseline(nn.Module):
    """Base of a cited baseline: no attention block, one input-size divisor.

    ``attention`` is ``None`` (the report draws attention maps only for models
    with one of the study's blocks).
    """

    attention = None
    name = "baseline"
    divisor = 1

    def setup(self, attention: str, input_size: tuple[int, int], divisor: int) -> None:
        """Check the arguments every baseline refuses: an attention variant, an unusable input size."""
        if attention != "none":
            raise ValueError(
                f"{self.name} is a cited baseline and takes no attention variant (got {attention!r}); "
                "use attention='none'"
            )
        self.divisor = divisor
        self.input_size = tuple(int(s) for s in input_size)
        self.check_size(self.input_size)

    def check_size(self, size: tuple[int, ...]) -> None:
        """Raise unless both sides of ``size`` are positive multiples of the down-sampling factor."""
        if any(s < self.divisor or s % self.divisor for s in size):
            raise ValueError(
                f"{self.name} needs input sides divisible by {self.divisor} (its down-sampling), got "
                f"{size[0]}x{size[1]}; choose a crop size that is"
            )

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        raise ValueError(f"{self.name} is a cited baseline: it has no attention block of this study's variants")
