"""Start-up exchange fixes: what `redshift-connector` sends vs. what PostgreSQL accepts.

Why: the driver's StartupMessage carries Redshift-only parameters (`client_protocol_version`,
`driver_version`, `os_version`, `driver_discovery_version`, and with identity providers
`plugin_name`, `idp_type`, `provider_name`, `token_type`, ...). PostgreSQL treats every unknown
start-up parameter as a GUC and fails the connection with FATAL 42704. We keep only names
PostgreSQL knows (read from `pg_settings` once) and drop the rest.

On the way back, PostgreSQL's ParameterStatus `server_version` ("18.x") is rewritten to what
Redshift reports ("8.0.2"): the driver parses it and, like against Redshift, then does not expect
a row count on COPY/FETCH tags. We never send `server_protocol_version`, so the driver falls back
to its base (text) protocol, which is what PostgreSQL's binary formats are compatible with
(Redshift's binary NUMERIC encoding is not PostgreSQL's).
"""

from __future__ import annotations

from collections.abc import Iterable

from .protocol import cstr, read_cstr

# Start-up keys that are not GUCs but that PostgreSQL understands.
PROTOCOL_KEYS = frozenset({"user", "database", "options", "replication"})

# ParameterStatus values that should look like Redshift to the client.
REDSHIFT_PARAMETER_STATUS = {"server_version": "8.0.2"}


def parse_startup_params(body: bytes) -> dict[str, str]:
    """Key/value pairs of a StartupMessage body (after the protocol version)."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        key, pos = read_cstr(body, pos)
        value, pos = read_cstr(body, pos)
        params[key] = value
    return params


def filter_startup_params(
    params: dict[str, str], known_settings: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Split into (kept, dropped): keep protocol keys, known GUCs and custom `a.b` GUCs."""
    known = {name.lower() for name in known_settings}
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for key, value in params.items():
        lowered = key.lower()
        accepted = (
            lowered in PROTOCOL_KEYS
            or lowered in known
            or ("." in lowered and not lowered.startswith("_pq_."))
        )
        (kept if accepted else dropped)[key] = value
    return kept, dropped


def rewrite_parameter_status(body: bytes) -> bytes:
    """A ParameterStatus body with Redshift's value substituted where we have one."""
    name, _ = read_cstr(body, 0)
    replacement = REDSHIFT_PARAMETER_STATUS.get(name)
    if replacement is None:
        return body
    return cstr(name) + cstr(replacement)
