"""The README's configuration table, generated from the settings models' field docstrings."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from ingest.config import CommonSettings, IngestSettings


def _settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    classes: list[tuple[str, type[BaseSettings]]] = [
        ("common", CommonSettings),
        ("ingest", IngestSettings),
    ]
    try:
        from loader.config import LoaderSettings
    except ImportError:  # pragma: no cover - the loader is part of the package
        pass
    else:
        classes.append(("loader", LoaderSettings))
    return classes


def _default(value: object) -> str:
    if isinstance(value, SecretStr):  # defaults are never secrets: show them
        value = value.get_secret_value()
    if value is None or value == "":
        return "(empty)"
    return f"`{value}`"


def markdown_table() -> str:
    rows = ["| variable | used by | default | meaning |", "|---|---|---|---|"]
    seen: set[str] = set()
    for who, cls in _settings_classes():
        for name, info in cls.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            var = f"LOGSHIP_{name.upper()}"
            desc = " ".join((info.description or "").split()).replace("|", "\\|")
            rows.append(f"| `{var}` | {who} | {_default(info.default)} | {desc} |")
    return "\n".join(rows)
