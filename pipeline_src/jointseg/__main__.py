"""``python -m jointseg``: the same CLI as the ``jointseg`` script (the workflow uses this form)."""

from jointseg.cli import main

raise SystemExit(main())
