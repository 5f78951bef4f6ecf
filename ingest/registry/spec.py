"""The registry file, as a model: the YAML document `logship registry check` validates.

The format is a contract between the teams who write events and everything downstream
(docs/architecture.md#registry-format). These models are its one definition; the limits say
what the warehouse can hold, so that a registry that passes `check` always loads.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ingest.event import MAX_KEY_BYTES

#: Entity and field names: warehouse column names and `properties` keys.
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: An entity is a column of `events`: at most this many characters.
MAX_ENTITY_NAME_CHARS = 63
#: Descriptions are documentation, but they also land in the warehouse's `event_registry`
#: table (Redshift VARCHAR): bounded so that a registry that passes `check` always loads.
MAX_DESCRIPTION_CHARS = 4096
#: A field name is a key of `properties` (SUPER): at most a Redshift identifier's 127 bytes.
MAX_FIELD_NAME_BYTES = MAX_KEY_BYTES

FieldType = Literal["string", "integer", "number", "boolean", "timestamp", "object", "array"]


class FieldSpec(BaseModel):
    """One declared field of an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = False
    enum: list[str] | None = None
    pii: Literal["drop", "hash"] | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)


class EventSpec(BaseModel):
    """One event of the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    owner: str | None = Field(default=None, max_length=128)
    version: int = Field(default=1, ge=1, le=2**31 - 1)  # an INTEGER column in the warehouse
    extra: Literal["ignore", "allow"] = "ignore"
    fields: dict[str, FieldSpec] = {}


def _at_least_one_event(v: Any) -> Any:
    if isinstance(v, dict) and not v:
        raise ValueError("at least one event is required")
    return v


class RegistryFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    entities: list[str] = []
    events: Annotated[dict[str, EventSpec], BeforeValidator(_at_least_one_event)]


class RawRegistryFile(BaseModel):
    """The document with its events still raw: each event is validated on its own, so one
    broken event does not hide the problems of the others."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    entities: list[str] = []
    events: Annotated[dict[str, Any], BeforeValidator(_at_least_one_event)]
