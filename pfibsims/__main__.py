"""``python -m pfibsims`` runs the command line (see :mod:`pfibsims.app.cli`)."""

from .app.cli import run

run()
