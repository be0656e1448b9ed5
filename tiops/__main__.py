"""``python -m tiops`` runs the command line."""

from __future__ import annotations

from tiops.cli import run

run()
