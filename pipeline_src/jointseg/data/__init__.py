"""Data layer: sources and checksums, download, safe extraction, format adapters
(ISIC 2017, MSD incl. multi-modal tasks, nnU-Net v2 raw data sets), preparation
into one on-disk form, inference-time preprocessing, the embedded demo data and
the training loader.

See docs/design.md "Prepared data" for the on-disk contract.
"""
