"""`logship demo …`: its options are its own (:mod:`ingest.demo.command`); the command line
hands it the loader's usable states, so its expected figures match the warehouse's."""

from __future__ import annotations

from ingest.demo.command import main
from loader.analytics import USABLE_STATES


def run(argv: list[str]) -> int:
    return main(argv, usable_states=USABLE_STATES)
