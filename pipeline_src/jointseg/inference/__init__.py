"""Inference: ``jointseg predict`` (:mod:`.predict`) and input discovery (:mod:`.inputs`); the
sliding window it shares with training's validation is :mod:`jointseg.models.sliding_window`."""
