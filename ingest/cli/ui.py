"""`logship ui`: the web UI over the configured warehouse (README "The web UI")."""

from __future__ import annotations

import argparse

from ingest.config import load_settings
from ingest.logs import setup_logging
from loader.ui import UiSettings, run_ui


def run(args: argparse.Namespace) -> int:
    settings = load_settings(UiSettings)
    setup_logging(settings.log_level)
    return run_ui(settings)
