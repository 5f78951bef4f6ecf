"""`logship config`: the configuration reference, generated from the settings models' field
docstrings (the README's configuration table is this output; tests/test_examples.py checks it)."""

from __future__ import annotations

import argparse

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from ingest.config import CommonSettings, IngestSettings
from loader.config import LoaderSettings
from loader.ui import UiSettings

#: Whose settings, in the order the table lists them (a field shared by two is listed once).
SETTINGS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("common", CommonSettings),
    ("ingest", IngestSettings),
    ("loader", LoaderSettings),
    ("ui", UiSettings),
)


def run(args: argparse.Namespace) -> int:
    print(markdown_table())
    return 0


def _default(value: object) -> str:
    if isinstance(value, SecretStr):  # defaults are never secrets: show them
        value = value.get_secret_value()
    if value is None or value == "":
        return "(empty)"
    return f"`{value}`"


def markdown_table() -> str:
    rows = ["| variable | used by | default | meaning |", "|---|---|---|---|"]
    seen: set[str] = set()
    for who, cls in SETTINGS:
        for name, info in cls.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            var = f"LOGSHIP_{name.upper()}"
            desc = " ".join((info.description or "").split()).replace("|", "\\|")
            rows.append(f"| `{var}` | {who} | {_default(info.default)} | {desc} |")
    return "\n".join(rows)
