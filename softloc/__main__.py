"""``python -m softloc``: the same command line as the ``softloc`` console script."""

from softloc.cli import main

raise SystemExit(main())
