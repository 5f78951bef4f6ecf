"""`logship ingest`: the HTTP sink (and, with `--worker-index`, one of its workers).

Imports nothing of the loader: every worker process starts through this module."""

from __future__ import annotations

import argparse

from ingest.config import IngestSettings, load_settings
from ingest.logs import setup_logging
from ingest.registry import load_registry
from ingest.server import run_ingest


def run(args: argparse.Namespace) -> int:
    settings = load_settings(IngestSettings)
    setup_logging(settings.log_level)
    load_registry(settings.registry_path)  # fail fast, before any socket is opened
    return run_ingest(settings, args.worker_index)
