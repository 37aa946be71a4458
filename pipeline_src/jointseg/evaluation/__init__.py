"""Evaluation stage: per-case, per-class metrics of a prediction folder (``jointseg evaluate``).

- :mod:`.metrics`: the metric policy (:data:`~.metrics.METRICS`, :func:`~.metrics.case_metrics`);
- :mod:`.labels`: reading label files;
- :mod:`.evaluate`: a folder against its references, ``metrics.csv`` and the CLI.
"""
