"""Shared pieces of the MLflow tests: one SQLite store per test module, run configs,
reading runs back through ``mlflow.search_runs``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Body of a test module's ``mlflow_store`` fixture: a migrated SQLite store
    (creating one takes seconds, so a module's tests share it, by study name).

    The module's tests run in its folder: MLflow puts a new experiment's artifacts in
    ``./mlruns`` of the working directory.
    """
    from jointseg.tracking import client

    base = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        uri = f"sqlite:///{base}/mlflow.db"
        client(uri)
        yield uri


def run_config(
    uri: str | None = None, study: str = "unit", variant: str = "joint", seed: int = 0, dataset: str = "demo_isic"
) -> dict:
    """A resolved run config as ``jointseg resolve`` writes it (the keys tracking reads)."""
    return {
        "study": study,
        "dataset": dataset,
        "variant": variant,
        "seed": seed,
        "prepared_dir": "does/not/exist",
        "size": [64, 64],
        "labels": {"0": "background", "1": "lesion"},
        "model": {"arch": "denseunet", "preset": "small", "attention": variant},
        "train": {"lr": 0.001, "betas": [0.9, 0.99], "augment": {"flip": True}},
        "mlflow": {"tracking_uri": uri},
    }


def search_runs(uri: str, study: str):
    """Every run of ``jointseg-<study>`` in the store ``uri`` as MLflow's DataFrame."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):  # mlflow.search_runs reads the process-wide URI
        return mlflow.search_runs(experiment_names=[f"jointseg-{study}"], output_format="pandas")


def artifact_paths(uri: str, run_id: str, folder: str | None = None) -> set[str]:
    """Every artifact file of a run (recursively), as paths relative to its artifact root."""
    from jointseg.tracking import client

    c, out, todo = client(uri), set(), [folder]
    while todo:
        for info in c.list_artifacts(run_id, todo.pop()):
            (todo.append(info.path) if info.is_dir else out.add(info.path))
    return out
