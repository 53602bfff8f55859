"""``python -m arbray`` runs the command line."""

import sys

from arbray.cli import main

sys.exit(main())
