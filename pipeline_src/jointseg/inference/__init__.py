"""Inference: ``jointseg predict`` (:mod:`.predict`), input discovery (:mod:`.inputs`) and the
sliding-window helpers that training's validation shares (:mod:`.sliding_window`)."""
