"""``python -m pfibsims`` runs the command line (see :mod:`pfibsims.cli`)."""

from .app.cli import main

raise SystemExit(main())
