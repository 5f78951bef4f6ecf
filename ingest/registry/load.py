"""Reading a registry: a file (or the bundled one) → checked → compiled, once at start."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ingest.registry.check import RegistryError, check
from ingest.registry.compile import Registry, compile_registry


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Parse and compile registry YAML; raises RegistryError listing every problem."""
    return compile_registry(check(text, source), source)


def bundled_registry_text() -> str:
    return resources.files("ingest").joinpath("data/registry.yaml").read_text("utf-8")


def load_registry(path: Path | None = None) -> Registry:
    """Load the registry at `path`, or the bundled one."""
    if path is None:
        return parse_registry(bundled_registry_text(), "bundled registry.yaml")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_registry(text, str(path))
