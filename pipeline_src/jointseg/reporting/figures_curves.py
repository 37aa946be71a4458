"""Learning curves: each variant's training loss (raw and smoothed) and validation Dice.

Variants get panels of their own (shared axes), because their curves can coincide:
a curve drawn over another would hide it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from .figures import LOSS_HALF_LIFE, MARKER_MAX_POINTS, PANELS_PER_ROW, SEED_STYLES, fit_height, plt, save_figure


def smoothed(values: pd.Series, n_steps: int) -> pd.Series:
    """Exponential moving average with a half-life of :data:`LOSS_HALF_LIFE` of ``n_steps``
    (bias-corrected at the start, so the first values are not pulled towards zero)."""
    return values.ewm(halflife=max(1.0, LOSS_HALF_LIFE * n_steps), adjust=True).mean()


def _curve_axes(n_variants: int) -> tuple[plt.Figure, list, list]:
    """A loss row above a validation-Dice row per block of :data:`PANELS_PER_ROW` variants."""
    cols = min(n_variants, PANELS_PER_ROW)
    blocks = math.ceil(n_variants / cols)
    fig, axes = plt.subplots(
        2 * blocks, cols, squeeze=False, figsize=(3.0 * cols + 1.2, fit_height(2 * blocks, 2.3, 0.7))
    )
    loss_axes = [axes[2 * (i // cols)][i % cols] for i in range(n_variants)]
    dice_axes = [axes[2 * (i // cols) + 1][i % cols] for i in range(n_variants)]
    for i in range(n_variants, blocks * cols):  # empty places of the last block
        axes[2 * (i // cols)][i % cols].axis("off")
        axes[2 * (i // cols) + 1][i % cols].axis("off")
    for ax in loss_axes[1:]:
        ax.sharey(loss_axes[0])
    for ax in dice_axes[1:]:
        ax.sharey(dice_axes[0])
    for ax in loss_axes + dice_axes:
        ax.sharex(loss_axes[0])
    return fig, loss_axes, dice_axes


def learning_curves(histories: dict[tuple[str, int], pd.DataFrame], dataset: str, path: str | Path) -> Path:
    """Training loss and validation Dice against iteration, one column of panels per variant.

    Variants get panels of their own (shared axes) because their curves can coincide:
    a curve drawn over another would hide it. Loss: the raw trace faint, its EMA
    (:func:`smoothed`) solid. Validation Dice: a marker per validation where there
    are few. In each panel the other variants' curves are light grey, for comparison.
    One colour per variant, one line style per seed. ``histories`` maps
    ``(variant, seed)`` to a ``history.csv`` table (``step``, ``loss``, ``val_dice``).
    """
    variants = list(dict.fromkeys(v for v, _ in histories))
    seeds = sorted({s for _, s in histories})
    colour = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    style = {s: SEED_STYLES[i % len(SEED_STYLES)] for i, s in enumerate(seeds)}
    fig, loss_axes, dice_axes = _curve_axes(len(variants))
    loss, dice = {}, {}  # (variant, seed) -> (steps, values) of the drawn curves
    for key, hist in histories.items():
        if "loss" in hist:
            h = hist[["step", "loss"]].dropna()
            loss[key] = (h["step"], h["loss"], smoothed(h["loss"], len(h)))
        if "val_dice" in hist:
            h = hist[["step", "val_dice"]].dropna()
            dice[key] = (h["step"], h["val_dice"])
    for i, variant in enumerate(variants):
        ax_loss, ax_dice = loss_axes[i], dice_axes[i]
        for (v, seed), (steps, raw, ema) in loss.items():
            if v != variant:
                ax_loss.plot(steps, ema, color="0.82", lw=0.8, ls=style[seed], zorder=1)
                continue
            ax_loss.plot(steps, raw, color=colour[v], lw=0.6, alpha=0.25, ls=style[seed], zorder=2)
            ax_loss.plot(steps, ema, color=colour[v], lw=1.6, ls=style[seed], zorder=3)
        for (v, seed), (steps, values) in dice.items():
            mine = v == variant
            marker = "o" if mine and len(values) <= MARKER_MAX_POINTS else None
            ax_dice.plot(
                steps,
                values,
                color=colour[v] if mine else "0.82",
                lw=1.4 if mine else 0.8,
                ls=style[seed],
                marker=marker,
                ms=3.5,
                zorder=3 if mine else 1,
            )
        ax_loss.set_title(variant, fontsize=10, color=colour[variant])
        ax_dice.set_xlabel("iteration", fontsize=8)
        for ax in (ax_loss, ax_dice):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    loss_axes[0].set_ylabel("training loss", fontsize=9)
    dice_axes[0].set_ylabel("validation Dice", fontsize=9)
    for ax in loss_axes[PANELS_PER_ROW::PANELS_PER_ROW]:
        ax.set_ylabel("training loss", fontsize=9)
    for ax in dice_axes[PANELS_PER_ROW::PANELS_PER_ROW]:
        ax.set_ylabel("validation Dice", fontsize=9)
    handles = [Line2D([], [], color=colour[v], lw=2, label=v) for v in variants]
    handles += [Line2D([], [], color="0.3", ls=style[s], lw=1.2, label=f"seed {s}") for s in seeds]
    handles += [Line2D([], [], color="0.82", lw=1.2, label="other variants")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(
        f"{dataset}: training loss (faint: per iteration; solid: moving average) and validation Dice",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
