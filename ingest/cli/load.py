"""`logship load`: the loader (lake → warehouse), one process."""

from __future__ import annotations

import argparse

from ingest.config import load_settings
from ingest.logs import setup_logging
from loader.config import LoaderSettings
from loader.server import run_loader


def run(args: argparse.Namespace) -> int:
    settings = load_settings(LoaderSettings)
    setup_logging(settings.log_level)
    return run_loader(settings, once=args.once)
