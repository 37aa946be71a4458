"""What bf16 autocast changes in the paper network, with the attention in fp32 and following autocast.

    .venv/bin/python bench/bench_autocast.py [--size 256] [--batch 1] [--queries 8] [--threads 2]

The ``paper`` preset (DACN) with ``joint`` attention at initialisation, on
random images, in fp32 and under bf16 autocast on the CPU (the CUDA path's code;
the kernels differ, the rounding of bf16 does not). Printed, as maximum absolute
differences from the fp32 run:

- the attention block alone, fed the fp32 run's bottleneck features (tiny at
  initialisation on random images) and unit-normal features (the scale of
  BatchNorm-normalised features of a trained network): its logits and
  probabilities (``attention_options.precision``: ``fp32`` must give 0);
- the whole network: the attention probabilities (now also through the bf16
  encoder) and the network's logits, also relative to their spread.

The block is the identity at initialisation (its output BN's scale is 0), so the
network's logits show the encoder's and decoder's bf16 error alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline_src"))

from jointseg.attention import fused  # noqa: E402
from jointseg.models import build_model  # noqa: E402

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _queries(grid: tuple[int, int], count: int) -> list[tuple[int, int]]:
    gen = torch.Generator().manual_seed(0)
    return [
        (int(torch.randint(grid[0], (1,), generator=gen)), int(torch.randint(grid[1], (1,), generator=gen)))
        for _ in range(count)
    ]


def _block_logits(block, x: torch.Tensor, row: int) -> torch.Tensor:
    """The logits of image row ``row``, computed as the block's forward computes them (island or not)."""
    with torch.autocast("cpu", enabled=torch.is_autocast_enabled("cpu") and block.precision == "autocast"):
        return torch.stack([fused.logits(g, block.size, row) for g in block._groups(x)])


def block_rows(model, features: torch.Tensor, queries) -> list[tuple[str, float, float]]:
    """(precision, max |logit error|, max |probability error|) of the block alone on fp32 features."""
    block, rows = model.attention, []
    with torch.no_grad():
        ref_logits = [_block_logits(block, features, q[0]) for q in queries]
        ref_maps = [block.attention_map(features, q) for q in queries]
        for precision in ("fp32", "autocast"):
            block.precision = precision
            with torch.autocast(**BF16):
                maps = [block.attention_map(features, q) for q in queries]
                logits = [_block_logits(block, features, q[0]) for q in queries]
            dl = max((a.float() - r).abs().max().item() for a, r in zip(logits, ref_logits))
            dp = max((a - r).abs().max().item() for a, r in zip(maps, ref_maps))
            rows.append((precision, dl, dp))
        block.precision = "fp32"
    return rows


def network_rows(model, x: torch.Tensor, queries) -> list[tuple[str, float, float, float]]:
    """(precision, max |probability error|, max |logit error|, that / logits' std) of the whole network."""
    with torch.no_grad():
        ref_logits, ref_maps = model(x), [model.attention_map(x, q) for q in queries]
        rows = []
        for precision in ("fp32", "autocast"):
            model.attention.precision = precision
            with torch.autocast(**BF16):
                logits = model(x).float()
                maps = [model.attention_map(x, q) for q in queries]
            dp = max((a - r).abs().max().item() for a, r in zip(maps, ref_maps))
            dl = (logits - ref_logits).abs().max().item()
            rows.append((precision, dp, dl, dl / ref_logits.std().item()))
        model.attention.precision = "fp32"
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--queries", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(preset="paper", attention="joint", input_size=(args.size, args.size)).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    captured = []
    model.attention.register_forward_pre_hook(lambda _m, a: captured.append(a[0].detach()))
    queries = _queries(model.attention_grid, args.queries)
    print(
        f"paper preset, joint, {args.size}², batch {args.batch}, bottleneck {model.attention_grid} x {model.attention_channels}, {len(queries)} queries; bf16 autocast vs fp32 (CPU)\n"
    )
    with torch.no_grad():
        model(x)
    print("| attention block alone: features | precision | max abs logit error | max abs probability error |")
    print("|---|---|---:|---:|")
    unit = torch.randn(captured[0].shape, generator=torch.Generator().manual_seed(1))
    for name, features in (("the network's at init", captured[0]), ("unit-normal", unit)):
        spread = f"std {features.std().item():.3g}"
        for precision, dl, dp in block_rows(model, features, queries):
            print(f"| {name} ({spread}) | {precision} | {dl:.3g} | {dp:.3g} |")
    print(
        "\n| whole network: precision | max abs attention-probability error | max abs logit error | / logits' std |\n|---|---:|---:|---:|"
    )
    for precision, dp, dl, rel in network_rows(model, x, queries):
        print(f"| {precision} | {dp:.3g} | {dl:.3g} | {rel:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
