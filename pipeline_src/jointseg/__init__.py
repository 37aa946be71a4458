"""jointseg: a reproducible reconstruction of "Joint Attention for Medical Image
Segmentation" (Zhang, Dong, Li; ISBI 2022).

Subpackages: ``attention`` (the unified spatial-attention module), ``models``
(DenseUNet presets and baselines), ``data`` (download, prepare, demo data,
loader); modules ``train``, ``predict``, ``evaluate``, ``metrics``,
``aggregate``, ``figures``, ``tracking`` and the ``cli``.
"""

__version__ = "0.1.0"
