"""Training batches ``t = start .. stop-1`` as tensors, in process or prefetched by workers."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.utils.data
from torch.utils.data import DataLoader


def _as_tensors(item: tuple[Any, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    image, label = item
    return torch.as_tensor(np.asarray(image), dtype=torch.float32), torch.as_tensor(np.asarray(label))


class _BatchRange(torch.utils.data.Dataset):
    """Batches ``start .. stop-1`` of a ``TrainBatches`` (module level: picklable for spawn workers)."""

    def __init__(self, batches: Any, start: int, stop: int) -> None:
        self.batches, self.start, self.stop = batches, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _as_tensors(self.batches[self.start + i])


def iterate_batches(
    batches: Any, start: int, stop: int, workers: int, device: torch.device
) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Yield ``(t, (image, label))`` for ``t`` in ``[start, stop)``.

    With ``workers > 0`` a DataLoader prefetches in background processes; the
    batches are the same (each is a pure function of ``(seed, t)``).
    """
    if workers <= 0:
        for t in range(start, stop):
            yield t, _as_tensors(batches[t])
        return

    loader = DataLoader(
        _BatchRange(batches, start, stop),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    yield from enumerate(loader, start=start)
