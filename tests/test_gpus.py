"""jointseg.gpus.visible_devices: $JOINTSEG_GPUS, else nvidia-smi -L, else none."""

from jointseg.gpus import visible_devices

LISTING = "GPU 0: NVIDIA H200 (UUID: GPU-a)\nGPU 1: NVIDIA H200 (UUID: GPU-b)\n"


def test_devices_from_nvidia_smi_the_variable_or_none(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\nprintf '{LISTING}'\n")
    fake.chmod(0o755)
    monkeypatch.delenv("JOINTSEG_GPUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_devices() == ["0", "1"]
    monkeypatch.setenv("JOINTSEG_GPUS", " 3, 5 ,")
    assert visible_devices() == ["3", "5"]
    monkeypatch.setenv("JOINTSEG_GPUS", "")
    assert visible_devices() == []
    monkeypatch.delenv("JOINTSEG_GPUS")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi at all
    assert visible_devices() == []
