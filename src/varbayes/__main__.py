"""``python -m varbayes`` runs the command line, like the ``varbayes`` console script."""

from varbayes.cli import run

run()
