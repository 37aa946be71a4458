"""The training stage: ``jointseg train`` (:mod:`jointseg.commands.train`) for one (data set, variant, seed).

Modules, in the order a run meets them:

- :mod:`.loop`: :func:`~.loop.train`, the iteration loop, :func:`~.loop.step` and :func:`~.loop.finish`;
- :mod:`.build`: network, optimiser, schedule, loss and batches from the run config;
- :mod:`.resume`: a finished folder is left alone, an interrupted one continues from ``latest.pt``;
- :mod:`.validate`: validation Dice (the sliding window of :mod:`jointseg.models.sliding_window`) and the choice of ``best.pt``;
- :mod:`.schedule`, :mod:`.losses`: the recipe's optimiser, lr schedule and loss;
- :mod:`.checkpoint`, :mod:`.state`, :mod:`.batches`: checkpoint files, progress, batch iteration.

Importing this package does not import torch (``jointseg train --help`` stays fast).
"""
