"""The event registry: one YAML file defining every business event, compiled once at start.

The file format is a contract (docs/architecture.md#registry-format):

* :mod:`~ingest.registry.spec` — the file model (pydantic) and its limits;
* :mod:`~ingest.registry.check` — every problem of a file at once (`logship registry check`);
* :mod:`~ingest.registry.compile` — a validator per event, for the hot path;
* :mod:`~ingest.registry.load` — a file, or the bundled one, checked and compiled;
* :mod:`~ingest.registry.pii` — `pii: hash`;
* :mod:`~ingest.registry.names`, :mod:`~ingest.registry.diff`,
  :mod:`~ingest.registry.export` — the tooling for producers and CI.
"""

from __future__ import annotations

from ingest.registry.check import RegistryError
from ingest.registry.compile import CompiledEvent, Registry
from ingest.registry.load import bundled_registry_text, load_registry, parse_registry
from ingest.registry.pii import PiiHasher
from ingest.registry.spec import EventSpec, FieldSpec, RegistryFile

__all__ = [
    "CompiledEvent",
    "EventSpec",
    "FieldSpec",
    "PiiHasher",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "bundled_registry_text",
    "load_registry",
    "parse_registry",
]
