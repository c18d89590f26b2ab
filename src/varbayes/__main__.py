"""``python -m varbayes`` runs the command line, like the ``varbayes`` console script."""

import sys

from varbayes.cli import main

sys.exit(main())
