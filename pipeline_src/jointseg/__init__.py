"""jointseg: a reproducible reconstruction of "Joint Attention for Medical Image
Segmentation" (Zhang, Dong, Li; ISBI 2022).

One package per pipeline stage (``data``, ``training``, ``inference``, ``evaluation``,
``reporting``, ``tracking``), below them ``models`` and ``attention`` (the networks and
the unified attention module), above them ``commands`` (one module per ``jointseg``
command) and ``cli`` (the entry point). docs/design.md has the map.
"""

__version__ = "0.1.0"
