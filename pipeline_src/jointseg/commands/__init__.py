"""The ``jointseg`` commands: one module per command, named after it (``make-demo`` is
:mod:`.make_demo`), each with ``add_arguments(parser)`` and ``main(args) -> int``.

A command module parses, checks its options and calls its stage; the work lives in
the stage packages, which never import a command. Modules here import only what
argparse needs at the top (``jointseg --help`` imports every one of them); the
stage a command runs is imported inside ``main``, marked, because it brings torch,
pandas or MLflow.
"""
