"""``python -m condi`` runs the command line."""

import sys

from condi.cli import main

sys.exit(main())
