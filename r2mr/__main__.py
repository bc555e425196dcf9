"""``python -m r2mr``: the command line (see :mod:`r2mr.cli.main`)."""

import sys

from .cli.main import main

sys.exit(main())
