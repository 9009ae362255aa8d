"""``python -m spinlearn`` runs the CLI."""

import sys

from spinlearn.cli import main

sys.exit(main())
