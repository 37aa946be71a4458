"""Evaluation stage: per-case, per-class metrics of a prediction folder (``jointseg evaluate``),
and the attention statistics of a run (``jointseg attention-stats``).

- :mod:`.metrics`: the metric registry (:data:`~.metrics.METRICS`) and :func:`~.metrics.case_metrics`;
- :mod:`.surfaces`: the directed surface distances the distance metrics are computed from;
- :mod:`.labels`: reading label files;
- :mod:`.evaluate`: a folder against its references, ``metrics.csv``;
- :mod:`.attention_measures`, :mod:`.attention_stats`: how local a run's attention maps are.
"""
