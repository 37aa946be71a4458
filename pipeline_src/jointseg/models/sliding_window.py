"""Applying a fixed-size network to an image of any size: the sliding window.

Shared by inference (``predict``) and training's validation, so it lives below both.

The attention block is built for one feature size, so the network only ever
sees windows of exactly its training ``input_size``: larger images/slices are
tiled with MONAI's ``sliding_window_inference`` (Gaussian blending), smaller
ones padded and cropped back. An image of exactly the window's size is one
window: it goes through the network directly (MONAI's blending of a single
window returns its logits), which spares training jobs, whose validation
images are prepared at that size, the seconds MONAI's import costs.
Validation (:func:`jointseg.training.validate.validation_dice`) goes through
the same function, so it sees what ``predict`` does.
"""

from __future__ import annotations

import numpy as np
import torch


def sliding_probabilities(
    model, array, roi, device, precision=None, overlap: float = 0.25, sw_batch_size: int = 8, chunk: int = 32
):
    """Softmax probabilities ``(N, K, H, W)`` (float32, CPU tensor) of ``array`` ``(N, C, H, W)``.

    ``N`` is 1 for a 2-D image and the slice count for a volume; slices go
    through the network ``chunk`` at a time so memory stays bounded.
    """
    x_all = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))
    if x_all.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x_all.shape)}")
    dtype = precision.dtype if precision is not None else None
    channels_last = bool(precision is not None and precision.channels_last)

    def predictor(window):
        if channels_last:
            window = window.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(window).float()

    outs = []
    with torch.no_grad():
        for start in range(0, x_all.shape[0], chunk):
            x = x_all[start : start + chunk].to(device, dtype=torch.float32)
            if tuple(x.shape[2:]) == tuple(int(r) for r in roi):
                logits = torch.cat([predictor(w) for w in x.split(sw_batch_size)])
                outs.append(torch.softmax(logits, dim=1).cpu())
                continue
            from monai.inferers import sliding_window_inference  # lazy: seconds to import, rarely needed

            logits = sliding_window_inference(
                x,
                roi_size=tuple(int(r) for r in roi),
                sw_batch_size=sw_batch_size,
                predictor=predictor,
                overlap=overlap,
                mode="gaussian",
                padding_mode="constant",
                cval=0.0,
            )
            outs.append(torch.softmax(torch.as_tensor(logits).float(), dim=1).cpu())
    return torch.cat(outs)
