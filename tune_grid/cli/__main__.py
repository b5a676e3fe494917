"""``python -m tune_grid.cli ...``: the ``tune-grid`` command without its console script."""

import sys

from tune_grid.cli.commands import main

sys.exit(main())
