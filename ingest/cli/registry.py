"""`logship registry check|export|diff`: the event registry's tools, for its authors and CI."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ingest.config import IngestSettings, load_settings
from ingest.registry import Registry, RegistryError, load_registry
from ingest.registry.diff import diff as diff_registries
from ingest.registry.export import export as export_registry


def _configured_registry(path: Path | None) -> Registry:
    """The registry at `path`, else the configured one (LOGSHIP_REGISTRY_PATH or bundled)."""
    return load_registry(path if path is not None else load_settings(IngestSettings).registry_path)


def check(args: argparse.Namespace) -> int:
    """Exit 1 with one line per problem on stderr (every problem, not just the first)."""
    try:
        reg = _configured_registry(args.path)
    except RegistryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"ok: {reg.source}: {len(reg.events)} events, entities: {', '.join(reg.entities)}")
    return 0


def export(args: argparse.Namespace) -> int:
    sys.stdout.write(export_registry(_configured_registry(args.path), args.format))
    return 0


def diff(args: argparse.Namespace) -> int:
    """Exit 0 when every change is compatible, 1 when any is breaking, 2 when a registry
    cannot be loaded (so CI can tell a breaking change from a broken file)."""
    try:
        old, new = load_registry(args.old), load_registry(args.new)
    except RegistryError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 2
    changes = diff_registries(old, new)
    breaking = sum(c.breaking for c in changes)
    if args.json:
        rows = [{"breaking": c.breaking, "change": c.what} for c in changes]
        print(json.dumps(rows, indent=2))
    else:
        for c in changes:
            print(c.line())
    print(f"{len(changes)} changes: {breaking} breaking, {len(changes) - breaking} compatible",
          file=sys.stderr)  # fmt: skip
    return 1 if breaking else 0
