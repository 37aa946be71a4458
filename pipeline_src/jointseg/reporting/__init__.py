"""Reporting stage: tables, statistics, figures and the report over all runs.

- :mod:`.collect`: read the inputs (explicit paths; each says what it is in its data);
- :mod:`.stats`: mean ± std, bootstrap CI, paired Wilcoxon, Holm;
- :mod:`.summary`: the statistics policy (derived distances, per-seed and pooled statistics);
- :mod:`.recipe`: training recipe and parameter counts from the run configs;
- :mod:`.tables`, :mod:`.report`: CSV, Markdown, LaTeX, ``report.md``;
- :mod:`.figures`, :mod:`.figures_attention`, :mod:`.figure_set`: the figures;
- :mod:`.aggregate` (``jointseg aggregate``), :mod:`.headline` (``jointseg headline-metrics``).
"""
