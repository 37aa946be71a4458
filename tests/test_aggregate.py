"""Statistics with known answers, aggregation of a fake results tree, figures."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from jointseg.aggregate import aggregate, parse_metrics_path
from jointseg.cli import main as cli_main
from jointseg.config import load_config
from jointseg.evaluate import COLUMNS, write_metrics
from jointseg.io_utils import UserError
from jointseg.stats import bootstrap_ci, mean_std, paired_wilcoxon


# --------------------------------------------------------------------------- stats
def test_constant_data_ci_collapses_and_std_is_zero():
    assert bootstrap_ci([0.7] * 25, n_resamples=500) == pytest.approx((0.7, 0.7))
    mean, std, n = mean_std([0.7] * 25 + [float("nan")])
    assert (mean, std, n) == (pytest.approx(0.7), pytest.approx(0.0, abs=1e-12), 25)
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))


def test_bootstrap_ci_of_normal_sample_has_expected_coverage_and_width():
    rng = np.random.default_rng(123)
    x = rng.normal(5.0, 2.0, size=4000)
    lo, hi = bootstrap_ci(x, n_resamples=2000, seed=1)
    assert lo < 5.0 < hi
    expected = 2 * 1.959964 * x.std(ddof=1) / math.sqrt(x.size)  # normal-theory width
    assert hi - lo == pytest.approx(expected, rel=0.1)
    assert bootstrap_ci(x, n_resamples=2000, seed=1) == (lo, hi)  # seeded: reproducible


def _exact_wilcoxon(diffs: np.ndarray) -> tuple[float, float]:
    """Statistic min(W+, W-) from ranks of |d| and the exact two-sided p by enumerating signs."""
    d = diffs[diffs != 0]
    ranks = pd.Series(np.abs(d)).rank().to_numpy()
    w_plus = ranks[d > 0].sum()
    stat = min(w_plus, ranks.sum() - w_plus)
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    p = min(1.0, 2 * np.mean([s <= stat for s in sums]))
    return stat, p


def test_wilcoxon_matches_ranks_computed_by_hand():
    a = np.array([0.81, 0.72, 0.60, 0.94, 0.55, 0.86])
    b = a - np.array([0.01, 0.02, -0.03, 0.04, 0.05, 0.06])
    res = paired_wilcoxon(a, b)
    # ranks 1..6, negative difference has rank 3: W- = 3, W+ = 18; P(W <= 3) = 5/64
    assert res["statistic"] == pytest.approx(3.0)
    assert res["p"] == pytest.approx(10 / 64)
    assert (res["statistic"], res["p"]) == pytest.approx(_exact_wilcoxon(a - b))
    assert res["n"] == 6


def test_wilcoxon_drops_nan_pairs_and_handles_zero_differences():
    a = [1.0, 2.0, float("nan"), 4.0, 5.0]
    b = [0.5, 1.0, 3.0, float("nan"), 4.0]
    assert paired_wilcoxon(a, b)["n"] == 3
    same = paired_wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same == {"n": 3, "statistic": 0.0, "p": 1.0}
    assert math.isnan(paired_wilcoxon([float("nan")], [1.0])["p"])
    # zero differences are dropped before the test: the exact p of the remaining pairs
    zeros = paired_wilcoxon([1, 1, 1, 1, 0.5, 0.7, 0.9], [1, 1, 1, 1, 0.4, 0.5, 0.6])
    assert zeros["n"] == 7 and zeros["p"] == pytest.approx(_exact_wilcoxon(np.array([0.1, 0.2, 0.3]))[1])
    assert zeros["p"] == pytest.approx(0.25)


# --------------------------------------------------------------------------- fake results tree
JOINT = np.array([0.81, 0.72, 0.60, 0.94, 0.55, 0.86])
DIFF = np.array([0.01, 0.02, -0.03, 0.04, 0.05, 0.06])
CASES = [f"c{i}" for i in range(6)]


def _metrics_frame(dice: np.ndarray, hd: np.ndarray, klass: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"case": CASES, "class": klass, "dice": dice, "iou": dice / (2 - dice), "hd95": hd,
                         "assd": hd / 2, "sensitivity": dice, "specificity": 0.99, "precision": dice})[list(COLUMNS)]


def write_config(root: Path, with_msd: bool = False) -> Path:
    datasets = {"toy2d": {"format": "isic", "sources": [{"url": "x.zip"}], "size": [64, 64],
                          "labels": {"0": "background", "1": "lesion"}}}
    if with_msd:
        datasets["toy3d"] = {"format": "msd", "sources": [{"url": "x.tar"}], "size": [64, 64], "slice_axis": 2,
                             "labels": {"0": "background", "1": "anterior", "2": "posterior"}}
    cfg = {"study": "toy", "seeds": [0, 1], "variants": ["pointwise", "self", "joint"],
           "reference_variant": "joint", "datasets": datasets,
           "data_dir": str(root / "data"), "results_dir": str(root / "results"),
           "report": {"bootstrap": 200, "qualitative_cases": 2, "attention_queries": 2}}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def fake_results(root: Path) -> Path:
    """Seeds are +-0.1 around known per-case values, so seed means are exact known numbers."""
    results = root / "results"
    hd = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    for variant, base in (("joint", JOINT), ("pointwise", JOINT - DIFF), ("self", JOINT)):
        for seed, delta in ((0, -0.1), (1, 0.1)):
            h = hd.copy() + (1.0 if variant == "pointwise" else 0.0)
            if variant == "pointwise":
                h[0] = np.nan  # undefined in both seeds: excluded from the pooled distance mean
                if seed == 0:
                    h[1] = np.nan  # undefined in one seed: the other seed's value is used
            write_metrics(_metrics_frame(base + delta, h), results / "toy2d" / variant / f"seed{seed}" / "metrics.csv")
    return results


def test_summary_values_tables_and_pvalues(tmp_path):
    cfg_path = write_config(tmp_path)
    results = fake_results(tmp_path)
    config = load_config(cfg_path)
    out = results / "summary"
    aggregate(config, results, out, tmp_path / "data", figures=False, config_path=str(cfg_path))

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:6]) == ["dataset", "variant", "seed", "class", "n_cases", "n_nan_distance"]
    assert list(summary["variant"].unique()) == ["pointwise", "self", "joint"]  # config order
    j0 = summary[(summary["variant"] == "joint") & (summary["seed"] == 0)].iloc[0]
    assert j0["dice"] == pytest.approx(JOINT.mean() - 0.1, abs=1e-6)
    assert j0["n_cases"] == 6 and j0["n_nan_distance"] == 0
    p0 = summary[(summary["variant"] == "pointwise") & (summary["seed"] == 0)].iloc[0]
    assert p0["n_nan_distance"] == 2
    assert p0["hd95"] == pytest.approx(np.mean([5.0, 6.0, 7.0, 8.0]), abs=1e-5)  # NaN excluded

    stats = pd.read_csv(out / "stats.csv")
    row = stats[(stats["metric"] == "dice") & (stats["variant"] == "pointwise")].iloc[0]
    assert row["mean"] == pytest.approx((JOINT - DIFF).mean(), abs=1e-6)
    assert row["std"] == pytest.approx((JOINT - DIFF).std(ddof=1), abs=1e-5)
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["p_value"] == pytest.approx(10 / 64, abs=1e-5) and row["n_pairs"] == 6
    assert row["wilcoxon_statistic"] == pytest.approx(3.0)
    same = stats[(stats["metric"] == "dice") & (stats["variant"] == "self")].iloc[0]
    assert same["p_value"] == 1.0  # identical per-case values
    hd = stats[(stats["metric"] == "hd95") & (stats["variant"] == "pointwise")].iloc[0]
    assert hd["n"] == 5 and hd["n_nan"] == 1 and hd["n_nan_case_seed"] == 3
    assert hd["mean"] == pytest.approx(np.mean([4.0, 5.0, 6.0, 7.0, 8.0]), abs=1e-5)
    assert hd["n_pairs"] == 5
    ref = stats[(stats["metric"] == "dice") & (stats["variant"] == "joint")].iloc[0]
    assert math.isnan(ref["p_value"])

    md = (out / "summary.md").read_text()
    assert "## toy2d: class 1 (lesion)" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| pointwise"))
    assert f"{(JOINT - DIFF).mean():.3f} ± {(JOINT - DIFF).std(ddof=1):.3f}" in line
    assert "| 0.156 |" in line and line.rstrip().endswith("| 6 | 3 |")
    assert "**joint** (ref)" in md
    tex = (out / "summary.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\pm" in tex and "0.156" in tex and "\\textbf{joint}" in tex
    report = (out / "report.md").read_text()
    assert "[summary.md](summary.md)" in report and "code commit" in report and "sha256" in report


def test_output_is_byte_identical_across_runs(tmp_path):
    cfg_path = write_config(tmp_path)
    results = fake_results(tmp_path)
    config = load_config(cfg_path)
    aggregate(config, results, tmp_path / "a", tmp_path / "data", figures=True)
    aggregate(config, results, tmp_path / "b", tmp_path / "data", figures=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("summary.csv") in files and Path("figures/toy2d_boxplots.png") in files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_cli_missing_runs_and_explicit_metrics(tmp_path, capsys):
    cfg_path = write_config(tmp_path)
    results = fake_results(tmp_path)
    (results / "toy2d" / "self" / "seed1" / "metrics.csv").unlink()
    out = tmp_path / "summary"
    rc = cli_main(["aggregate", "--config", str(cfg_path), "--out", str(out), "--no-figures", "--no-mlflow"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing" in err and "self/seed1" in err and not (out / "summary.csv").exists()
    files = sorted(str(p) for p in results.rglob("metrics.csv"))
    rc = cli_main(["aggregate", "--config", str(cfg_path), "--out", str(out), "--no-figures", "--no-mlflow",
                   "--metrics", *files])
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 5 and summary["seed"].tolist().count(1) == 2
    with pytest.raises(UserError, match="seed<k>"):
        parse_metrics_path(Path("results/x/metrics.csv"))


# --------------------------------------------------------------------------- figures with real inputs
def _rgb_case(rng, size=48):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(18, 30, 2)
    lesion = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(60, 120)
    img = np.full((size, size, 3), 200, np.uint8)
    img[lesion] = (120, 70, 50)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, lesion.astype(np.uint8)


def _volume_case(rng, shape=(40, 44, 8)):
    grid = np.indices(shape)
    head = ((grid[0] - 20) / 18) ** 2 + ((grid[1] - 22) / 20) ** 2 <= 1
    a = ((grid[0] - 15) / 5) ** 2 + ((grid[1] - 20) / 6) ** 2 + ((grid[2] - 4) / 3) ** 2 <= 1
    b = ((grid[0] - 25) / 5) ** 2 + ((grid[1] - 24) / 6) ** 2 + ((grid[2] - 4) / 3) ** 2 <= 1
    img = head * 100.0 + a * 50 + b * 80 + rng.normal(0, 3, shape) * head
    lab = np.zeros(shape, np.uint8)
    lab[a] = 1
    lab[b] = 2
    return img.astype(np.float32), lab


def fake_full_tree(root: Path, torch, build_model, with_3d: bool) -> Path:
    """Prepared test folders, predictions, metrics, histories and tiny checkpoints (2-D, optionally 3-D)."""
    rng = np.random.default_rng(0)
    cfg_path = write_config(root, with_msd=with_3d)
    results = root / "results"
    affine = np.diag([1.0, 1.2, 2.5, 1.0])
    for ds, ndim in (("toy2d", 2), ("toy3d", 3))[: 2 if with_3d else 1]:
        prep = root / "data" / "prepared" / ds / "test"
        (prep / "images").mkdir(parents=True)
        (prep / "labels").mkdir(parents=True)
        cases = {}
        for cid in CASES[:3]:
            if ndim == 2:
                img, lab = _rgb_case(rng)
                Image.fromarray(img).save(prep / "images" / f"{cid}.png")
                Image.fromarray(lab).save(prep / "labels" / f"{cid}.png")
            else:
                img, lab = _volume_case(rng)
                nib.save(nib.Nifti1Image(img, affine), str(prep / "images" / f"{cid}.nii.gz"))
                nib.save(nib.Nifti1Image(lab, affine), str(prep / "labels" / f"{cid}.nii.gz"))
            cases[cid] = lab
        spec = ({"ndim": 2, "size": [64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]} if ndim == 2
                else {"ndim": 3, "size": [64, 64], "slice_axis": 2})
        classes = [1] if ndim == 2 else [1, 2]
        for v_i, variant in enumerate(["pointwise", "self", "joint"]):
            kwargs = {"arch": "unet", "preset": "small", "in_channels": 3 if ndim == 2 else 1,
                      "num_classes": 2 if ndim == 2 else 3, "attention": variant, "attention_level": 8,
                      "input_size": (64, 64)}
            torch.manual_seed(v_i)
            model = build_model(**kwargs)
            with torch.no_grad():  # untrained blocks start near uniform: give the maps some structure
                for param in model.attention.parameters():
                    param.normal_(0.0, 0.5)
            for seed in (0, 1):
                run = results / ds / variant / f"seed{seed}"
                (run / "predictions").mkdir(parents=True)
                rows = []
                for cid, lab in cases.items():
                    pred = np.roll(lab, v_i + seed, axis=0)
                    if ndim == 2:
                        Image.fromarray(pred).save(run / "predictions" / f"{cid}.png")
                    else:
                        nib.save(nib.Nifti1Image(pred, affine), str(run / "predictions" / f"{cid}.nii.gz"))
                    for k in classes:
                        d = 0.9 - 0.1 * (v_i + seed) + 0.01 * k
                        rows.append({"case": cid, "class": k, "dice": d, "iou": d / (2 - d), "hd95": 1.0 + v_i,
                                     "assd": 0.5, "sensitivity": d, "specificity": 0.99, "precision": d})
                write_metrics(pd.DataFrame(rows)[list(COLUMNS)], run / "metrics.csv")
                steps = np.arange(0, 101, 10)
                pd.DataFrame({"step": steps, "loss": 1.0 / (1 + steps / (20 + 10 * v_i)),
                              "val_dice": np.where(steps % 50 == 0, 0.5 + steps / 250, np.nan)}).to_csv(
                    run / "history.csv", index=False)
                (run / "checkpoints").mkdir()
                torch.save({"model": model.state_dict(), "model_kwargs": kwargs, "preprocess": spec, "step": 100},
                           run / "checkpoints" / "final.pt")
    return cfg_path


def _assert_image(path: Path, min_side: int = 200) -> None:
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side, (path, im.size)
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5, f"{path} looks blank"


def _figures(tmp_path: Path, with_3d: bool) -> None:
    torch = pytest.importorskip("torch")
    try:
        from jointseg.models import build_model
    except ImportError as exc:  # the models module is written in parallel
        pytest.skip(f"jointseg.models not importable yet: {exc}")
    cfg_path = fake_full_tree(tmp_path, torch, build_model, with_3d)
    out = tmp_path / "results" / "summary"
    rc = cli_main(["aggregate", "--config", str(cfg_path), "--no-mlflow"])
    assert rc == 0
    datasets = ("toy2d", "toy3d") if with_3d else ("toy2d",)
    for ds in datasets:
        for kind in ("boxplots", "learning_curves", "qualitative", "attention"):
            _assert_image(out / "figures" / f"{ds}_{kind}.png")
    report = (out / "report.md").read_text()
    assert f"figures/{datasets[-1]}_attention.png" in report and "Not produced" not in report
    with Image.open(out / "figures" / "toy2d_attention.png") as im:
        assert "Software" not in im.info  # metadata stripped for stable bytes


def test_figures_are_drawn_2d(tmp_path):
    _figures(tmp_path, with_3d=False)


@pytest.mark.slow
def test_figures_are_drawn_2d_and_3d(tmp_path):
    _figures(tmp_path, with_3d=True)


@pytest.mark.slow
def test_summary_is_logged_to_the_mlflow_parent_run(tmp_path, monkeypatch):
    tracking = pytest.importorskip("jointseg.tracking")
    if not hasattr(tracking, "log_parent_artifacts"):
        pytest.skip("jointseg.tracking has no log_parent_artifacts yet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("JOINTSEG_MLFLOW_PARENT", raising=False)
    monkeypatch.delenv("JOINTSEG_MLFLOW", raising=False)
    cfg_path = write_config(tmp_path)
    results = fake_results(tmp_path)
    run_id = tracking.start_parent(load_config(cfg_path), results)
    assert cli_main(["aggregate", "--config", str(cfg_path), "--no-figures"]) == 0
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run_id, "summary")}
    assert {"summary/summary.csv", "summary/stats.csv", "summary/report.md"} <= logged
