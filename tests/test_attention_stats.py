"""Attention statistics: the measures against closed forms, grid labels, query draws, spacing,
and one run through ``jointseg attention-stats`` on the demo data (untrained networks)."""

from __future__ import annotations

import csv
import itertools
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
from training_helpers import prepare_demo

from jointseg.cli import main as cli_main
from jointseg.data.loader import eval_cases
from jointseg.evaluation import attention_measures as am
from jointseg.evaluation.attention_stats import COLUMNS, window


def brute_mean_distance(query, grid, steps) -> float:
    """Mean distance from the query to every cell, one cell at a time (independent of distances_from)."""
    total = 0.0
    for h, w in itertools.product(range(grid[0]), range(grid[1])):
        total += math.sqrt(((h - query[0]) * steps[0]) ** 2 + ((w - query[1]) * steps[1]) ** 2)
    return total / (grid[0] * grid[1])


def test_one_hot_at_the_query_gives_distance_zero_and_area_one_over_l():
    grid, query = (6, 5), (2, 3)
    prob = np.zeros(grid)
    prob[query] = 1.0
    obj = np.zeros(grid, dtype=bool)
    obj[2, 2:4] = True
    got = am.map_measures(prob, query, (8.0, 8.0), obj)
    assert got["distance"] == 0.0
    assert got["area"] == pytest.approx(1 / 30, rel=1e-12)
    assert got["object_mass"] == 1.0


@pytest.mark.parametrize(("grid", "query", "steps"), [((8, 8), (0, 0), (8.0, 8.0)), ((5, 7), (2, 1), (7.5, 3.0))])
def test_uniform_map_gives_the_grids_mean_distance_and_area_one(grid, query, steps):
    prob = np.full(grid, 1.0 / (grid[0] * grid[1]))
    got = am.map_measures(prob, query, steps)
    assert got["distance"] == pytest.approx(brute_mean_distance(query, grid, steps), rel=1e-12)
    assert got["area"] == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(got["object_mass"])


def test_uniform_distance_small_grids_by_hand():
    # 3x3, centre query, unit steps: four neighbours at 1, four corners at sqrt(2), itself at 0
    three = am.map_measures(np.full((3, 3), 1 / 9), (1, 1), (1.0, 1.0))["distance"]
    assert three == pytest.approx((4 + 4 * math.sqrt(2)) / 9, rel=1e-12)
    # two cells one step of 8 px apart: half the mass at 8 px
    assert am.map_measures(np.full((2, 1), 0.5), (0, 0), (8.0, 8.0))["distance"] == pytest.approx(4.0)


def test_area_of_a_map_uniform_over_k_cells_is_k_over_l_and_mass_sums_the_object():
    prob = np.zeros((4, 4))
    prob[:2, :3] = 1 / 6  # six cells
    obj = np.zeros((4, 4), dtype=bool)
    obj[0, :] = True  # three of them are in the object
    got = am.map_measures(prob * 3.0, (0, 0), (1.0, 1.0), obj)  # unnormalised input is renormalised
    assert got["area"] == pytest.approx(6 / 16, rel=1e-12)
    assert got["object_mass"] == pytest.approx(0.5, rel=1e-12)


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        am.map_measures(np.array([[0.5, -0.1], [0.3, 0.3]]), (0, 0), (1.0, 1.0))
    with pytest.raises(ValueError, match="non-negative"):
        am.map_measures(np.zeros((2, 2)), (0, 0), (1.0, 1.0))


def test_grid_labels_majority_class_and_padding():
    label = np.zeros((6, 7), dtype=np.uint8)  # stride 4: a 2x2 grid covers 8x8, padded with background
    label[0:2, 0:4] = 1  # cell (0,0): 8 of 16 pixels -> foreground (half counts)
    label[0:1, 4:7] = 2  # cell (0,1): 3 of 16 -> background
    label[4:6, 0:4] = 2  # cell (1,0): rows 4-5 are 8 of 16 (rows 6-7 are padding) -> class 2
    label[4:6, 0:1] = 1  # ... now 2 pixels of class 1 and 6 of class 2: still foreground, class 2 wins
    cells = am.grid_labels(label, (2, 2), 4)
    assert cells.tolist() == [[1, 0], [2, 0]]
    assert am.grid_labels(np.zeros((8, 8)), (2, 2), 4).tolist() == [[0, 0], [0, 0]]


def test_own_object_is_the_eight_connected_component_of_the_querys_class():
    cells = np.array(
        [
            [1, 0, 0, 1],
            [0, 1, 0, 1],
            [0, 2, 0, 0],
            [1, 0, 0, 0],
        ]
    )
    obj = am.own_object(cells, (0, 0))
    assert obj.sum() == 2 and obj[0, 0] and obj[1, 1]  # diagonal neighbour joins; (3,0) and column 3 do not
    assert am.own_object(cells, (0, 3)).sum() == 2
    assert am.own_object(cells, (2, 1)).sum() == 1  # class 2 is its own object
    with pytest.raises(ValueError, match="background"):
        am.own_object(cells, (0, 1))


def test_query_draw_is_seeded_and_respects_kinds():
    cells = np.zeros((8, 8), dtype=int)
    cells[2:4, 2:4] = 1  # four foreground cells
    first = am.sample_queries(cells, 6, am.query_rng(0, "case_a", 3))
    again = am.sample_queries(cells, 6, am.query_rng(0, "case_a", 3))
    other = am.sample_queries(cells, 6, am.query_rng(0, "case_b", 3))
    assert first == again and first != other
    kinds = [k for k, _, _ in first]
    assert kinds == ["foreground"] * 4 + ["background"] * 6  # only four foreground cells exist
    assert all((cells[h, w] > 0) == (k == "foreground") for k, h, w in first)
    assert len({(h, w) for _, h, w in first}) == len(first)  # without replacement


def test_inplane_spacing_follows_the_canonical_reorientation():
    # stored axis 0 (2 mm) points along world y, axis 1 (3 mm) along world x, axis 2 (4 mm) along z
    affine = np.array([[0, 3.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 1]])
    case = {"affine": affine.tolist(), "spacing": [2.0, 3.0, 4.0]}
    image = nib.Nifti1Image(np.zeros((5, 6, 7), dtype=np.float32), affine)
    canonical = nib.as_closest_canonical(image).header.get_zooms()  # nibabel's own answer
    assert am.inplane_spacing(case, 2) == pytest.approx(canonical[:2])
    assert am.inplane_spacing(case, 0) == pytest.approx(canonical[1:])
    assert am.inplane_spacing(case, 2) == pytest.approx((3.0, 2.0))
    assert am.grid_steps(8, (3.0, 2.0)) == (24.0, 16.0)


def test_window_cuts_around_the_foreground_and_pads_small_images():
    image = np.arange(2 * 10 * 6, dtype=np.float32).reshape(2, 10, 6)
    label = np.zeros((10, 6), dtype=np.uint8)
    label[7:9, 1:3] = 1
    img, lab = window(image, label, (4, 8))
    assert img.shape == (2, 4, 8) and lab.shape == (4, 8)
    assert lab.sum() == label.sum()  # the foreground is inside the window
    assert np.array_equal(img[:, :, 1:7], image[:, 6:10, :])  # rows 6-9 around rows 7-8; columns padded 1 + 1


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_demo(tmp_path_factory.mktemp("attention_stats")) / "prepared"


def untrained(prepared_dir, variant: str, path):
    """A checkpoint of an untrained network of ``variant`` (4x4 attention grid at 32x32)."""
    from jointseg.models import build_model
    from jointseg.training.checkpoint import save_checkpoint

    manifest = json.loads((prepared_dir / "manifest.json").read_text())
    kwargs = {
        "arch": "denseunet",
        "preset": "small",
        "in_channels": manifest["in_channels"],
        "num_classes": manifest["num_classes"],
        "attention": variant,
        "attention_level": 8,
        "input_size": list(manifest["size"]),
        "attention_options": {},
    }
    torch.manual_seed(0)
    model = build_model(**{**kwargs, "input_size": tuple(kwargs["input_size"])})
    run = {"dataset": manifest["dataset"], "variant": variant, "seed": 0}
    payload = {"model": model.state_dict(), "model_kwargs": kwargs, "preprocess": manifest["preprocess"]}
    return save_checkpoint(path, {**payload, "labels": manifest["labels"], "config": run}), model


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("dataset", ["demo_isic", "demo_msd"])
def test_cli_writes_one_row_per_query_and_branch_matching_the_models_maps(prepared, tmp_path, dataset):
    folder = prepared / dataset
    rows = {}
    for variant in ("pointwise", "self"):
        ckpt, model = untrained(folder, variant, tmp_path / f"{variant}.pt")
        out = tmp_path / f"{variant}.csv"
        args = ["--checkpoint", str(ckpt), "--prepared", str(folder), "--out", str(out)]
        assert cli_main(["attention-stats", *args, "--queries", "2", "--max-cases", "2", "--slices", "2"]) == 0
        rows[variant] = read_rows(out)
        assert list(rows[variant][0]) == list(COLUMNS)
    pw, sa = rows["pointwise"], rows["self"]
    assert {r["branch"] for r in pw} == {"collect", "distribute"} and {r["branch"] for r in sa} == {"content"}
    key = ("case", "slice", "query", "kind", "qh", "qw")
    assert [tuple(r[k] for k in key) for r in pw[::2]] == [tuple(r[k] for k in key) for r in sa]  # same queries
    assert {r["kind"] for r in sa} == {"foreground", "background"}
    assert len({r["case"] for r in sa}) == 2
    assert {r["unit"] for r in sa} == ({"mm"} if dataset == "demo_msd" else {"px"})
    for r in sa:
        assert 1 / 16 - 1e-6 <= float(r["area"]) <= 1 + 1e-6
        assert 0 <= float(r["distance"]) <= 3 * math.hypot(8, 8) * (1.0 if dataset == "demo_isic" else 2.0)
        assert math.isnan(float(r["object_mass"])) == (r["kind"] == "background")
    # the first query's measure, again through the model's public API on the same window
    first = sa[0]
    ckpt, model = untrained(folder, "self", tmp_path / "again.pt")
    image, label = next((im, lab) for case, im, lab in eval_cases(folder, "test") if case == first["case"])
    img, _ = window(image[int(first["slice"])], label[int(first["slice"])], (32, 32))
    prob = model.attention_map(torch.from_numpy(img)[None], (int(first["qh"]), int(first["qw"])))[0, 0].numpy()
    steps = (8.0, 8.0) if dataset == "demo_isic" else am.grid_steps(8, spacing_of(folder, first["case"]))
    expected = am.map_measures(prob, (int(first["qh"]), int(first["qw"])), steps)
    assert float(first["distance"]) == pytest.approx(expected["distance"], rel=1e-5)
    assert float(first["area"]) == pytest.approx(expected["area"], rel=1e-5)


def spacing_of(folder, case):
    manifest = json.loads((folder / "manifest.json").read_text())
    record = next(c for c in manifest["cases"] if c["id"] == case)
    return am.inplane_spacing(record, int(manifest["preprocess"]["slice_axis"]))


def test_cli_refuses_a_network_without_attention_and_bad_counts(prepared, tmp_path, capsys):
    folder = prepared / "demo_isic"
    ckpt, _ = untrained(folder, "none", tmp_path / "none.pt")
    out = tmp_path / "none.csv"
    assert cli_main(["attention-stats", "--checkpoint", str(ckpt), "--prepared", str(folder), "--out", str(out)]) == 2
    assert "no attention block" in capsys.readouterr().err and not out.exists()
    args = ["--checkpoint", str(ckpt), "--prepared", str(folder), "--out", str(out), "--queries", "0"]
    assert cli_main(["attention-stats", *args]) == 2
    assert "--queries 0: must be at least 1" in capsys.readouterr().err


def test_a_block_without_positional_maps_gets_a_header_only_table(prepared, tmp_path, capsys):
    """CBAM's channel/spatial gates have no map over positions: a note and no rows, not an error."""
    folder = prepared / "demo_isic"
    ckpt, _ = untrained(folder, "cbam", tmp_path / "gate.pt")
    out = tmp_path / "gate.csv"
    assert cli_main(["attention-stats", "--checkpoint", str(ckpt), "--prepared", str(folder), "--out", str(out)]) == 0
    assert out.read_text() == ",".join(COLUMNS) + "\n"
    assert "no positional map" in capsys.readouterr().err
