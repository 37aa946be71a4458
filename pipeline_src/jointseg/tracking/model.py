"""Logging a trained network as an MLflow pytorch model, cheaply (see ``RunTracker.log_model``)."""

from __future__ import annotations

import logging

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow.models import Model
from mlflow.models.signature import ModelSignature
from mlflow.types import Schema, TensorSpec

from .. import provenance


def signature(example: np.ndarray, out_channels: int):
    """``(N, C, H, W)`` float32 in, ``(N, out_channels, H, W)`` float32 logits out; N free."""
    f32 = np.dtype("float32")
    spatial = tuple(int(s) for s in example.shape[2:])
    return ModelSignature(
        inputs=Schema([TensorSpec(f32, (-1, int(example.shape[1]), *spatial))]),
        outputs=Schema([TensorSpec(f32, (-1, int(out_channels), *spatial))]),
    )


def requirements() -> list[str]:
    """Pinned pip requirements of a logged model (given, so MLflow infers none)."""
    versions = provenance.package_versions()
    # without the local label (torch 2.13.0+cpu -> ==2.13.0, which any +cpu/+cu build satisfies)
    return [
        f"{name}=={versions[name].split('+')[0]}"
        for name in ("torch", "monai", "numpy", "jointseg")
        if versions.get(name, "not installed") != "not installed"
    ]


def log_pytorch_model(
    uri: str, experiment_id: str, run_id: str, model, example: np.ndarray, num_classes: int | None
) -> None:
    """Log ``model`` to ``run_id`` (in ``experiment_id``) as the logged model ``model``, pickled.

    ``num_classes`` gives the output shape; when unknown, one forward pass on
    ``example`` measures it.
    """
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(model(torch.as_tensor(example)).shape[1])
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # the pickle-format notice
    mlflow.set_tracking_uri(uri)
    # Model.log with an explicit run_id, not a fluent start_run (whose exit would end the run
    # as FINISHED). Without an active run the logged model goes to the active experiment.
    mlflow.set_experiment(experiment_id=experiment_id)
    Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow.pytorch,
        run_id=run_id,
        pytorch_model=model,
        signature=signature(example, num_classes),
        pip_requirements=requirements(),
        serialization_format="pickle",
    )
