"""Stage 2: records → canonical registry events (DESIGN §3), dead letters and counts.

The hot path is shaped by the data: ~90% of records are noise logs. A record is only parsed
further when it can carry an event name — its own ``event``/``evt`` keys, or a ``message`` string
that starts with ``{`` and contains ``"ev`` — and pydantic only ever sees records whose name is in
the registry. Everything is counted per batch, not per record.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ingest.decode import BadRecord, LazyArray, LazyRecord, ParsedBody, parse_lenient
from ingest.registry import EVENT_NAME_RE, CompiledEvent, PiiHasher, Registry

#: Keys of an event body that describe the envelope, not the event's properties.
_ENVELOPE_KEYS = frozenset(
    {"event", "evt.name", "evt", "event_id", "timestamp", "time", "ts", "service", "host",
     "hostname", "message", "properties"}
)  # fmt: skip
_FRACTION = re.compile(r"([.,][0-9]{6})[0-9]+")
#: The common timestamp shape, `YYYY-MM-DDTHH:MM:SS[.digits]Z`, ASCII digits only.
_FAST_UTC = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?[Zz]"
)
_EPOCH = datetime(1970, 1, 1)
#: Event times outside [1970, 2200) are not times but defaults (Go's zero time 0001-01-01,
#: 9999-12-31 sentinels); they would also overflow date arithmetic downstream.
_MIN_TS, _MAX_TS = 0.0, 7258118400.0
_MIN_YEAR, _MAX_YEAR = 1970, 2199

# ---------------------------------------------------------------------- the canonical form
#
# What both warehouses load, checked against their documentation and against DuckDB's
# `read_json` and the Redshift emulator (PostgreSQL) in tests/hostile/test_accepted_loads.py.
# A lake object is loaded whole or not at all, so one value outside these bounds would take
# every good event of its object out of the warehouse: such a record is rejected alone.

#: Redshift's COPY refuses a JSON object above 4 MB, whatever LOGSHIP_MAX_RECORD_BYTES says.
MAX_LINE_BYTES = 4_000_000
#: A string inside SUPER is a VARCHAR: at most 65,535 bytes (UTF-8).
MAX_STRING_BYTES = 65535
#: Object keys inside `properties`: non-empty, at most a Redshift identifier's 127 bytes (a
#: longer or empty one cannot be named in a SUPER path).
MAX_KEY_BYTES = 127
#: Nesting of `properties` (the object itself is level 1): orjson serialises at most 254
#: levels (the line adds one) and SUPER holds at most 1,000.
MAX_PROPERTIES_DEPTH = 250
#: Integers are BIGINT: a JSON integer beyond 64 signed bits has no SUPER type.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Column widths of `events` (loader/sql.py), in bytes as Redshift's VARCHAR counts them:
#: event_id VARCHAR(512) holds 128 characters of up to 4 bytes, the others VARCHAR(1024) 256.
MAX_EVENT_ID_CHARS = 128
MAX_TEXT_COLUMN_CHARS = 256


@dataclass(slots=True)
class Extracted:
    """The outcome of one batch, ready for the spool and the metrics."""

    events: list[bytes] = field(default_factory=list)  # canonical NDJSON lines
    rejected: list[bytes] = field(default_factory=list)  # dead-letter NDJSON lines
    accepted: Counter[str] = field(default_factory=Counter)  # by event name
    discarded: Counter[str] = field(default_factory=Counter)  # by reason
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (event, reason)
    delays_s: list[float] = field(default_factory=list)  # received_at - occurred_at


class Reject(Exception):
    """One record is rejected: `reason` is a metric label, `detail` is for humans."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int
    max_json_depth: int


class Extractor:
    """Turns parsed records into canonical events for one registry."""

    def __init__(self, registry: Registry, limits: Limits, hasher: PiiHasher | None = None):
        self.registry = registry
        self.limits = limits
        self.hasher = hasher or PiiHasher()
        self._events = registry.events
        self._entities = registry.entities
        self._max_line_bytes = min(limits.max_record_bytes, MAX_LINE_BYTES)
        self._max_depth = min(limits.max_json_depth, MAX_PROPERTIES_DEPTH)

    # ------------------------------------------------------------------ per batch

    def extract(self, parsed: ParsedBody, received: datetime) -> Extracted:
        out = Extracted()
        received_ts = received.timestamp()
        received_at = _iso(received.astimezone(UTC))
        stamp = (received_ts, received_at)
        for bad in parsed.bad:
            self._dead_letter(out, "", bad.reason, bad.detail, bad.raw, received_at)
        lenient = parsed.lenient
        records = parsed.records
        noise = 0
        if type(records) is LazyArray:
            records = _lazy_candidates(records)
            noise = len(parsed.records) - len(records)
        events = self._events
        for i, rec in enumerate(records):
            # --- find the event body: the record itself, or the JSON object in its message
            if type(rec) is not dict:
                noise += 1
                continue
            body = rec
            name = _event_name(rec)
            strict = i not in lenient
            from_message = False
            if name is None:
                msg = rec.get("message")
                if msg is None:
                    msg = rec.get("log")  # Fluent Bit's tail input names the line `log`
                if type(msg) is not str or '"ev' not in msg or msg.lstrip()[:1] != "{":
                    noise += 1
                    continue
                try:
                    body = orjson.loads(msg)
                except orjson.JSONDecodeError as exc:
                    body, bad = parse_lenient(msg.encode("utf-8", "surrogatepass"), str(exc))
                    if bad is not None:
                        noise += 1
                        continue
                    strict = False
                if type(body) is not dict or (name := _event_name(body)) is None:
                    noise += 1
                    continue
                from_message = True
            ev = events.get(name)
            if ev is None:
                out.discarded["unregistered_event"] += 1
                continue
            # --- a registry event: validate, build, serialise; any failure rejects it alone
            try:
                self._one(out, ev, name, rec, body, msg if from_message else None, strict, stamp)
            except Exception as exc:  # never let one record fail the batch (DESIGN §2)
                reason = "too_deep" if isinstance(exc, RecursionError) else "internal"
                self._dead_letter(out, name, reason, f"{type(exc).__name__}: {exc}"[:300],
                                  {"unprintable_record": True}, received_at)  # fmt: skip
        if noise:
            out.discarded["no_event_name"] += noise
        return out

    def _one(
        self,
        out: Extracted,
        ev: CompiledEvent,
        name: str,
        rec: dict,
        body: dict,
        msg: str | None,
        strict: bool,
        stamp: Stamp,
    ) -> None:
        """Validate, build and serialise one registry event, or dead-letter it with a reason."""
        from_message = msg is not None
        received_ts, received_at = stamp
        try:
            size = len(msg) if msg is not None else len(_dumps_any(rec))
            if size > self.limits.max_record_bytes:
                raise Reject(
                    "record_too_large",
                    f"record is {size} bytes, above the limit of {self.limits.max_record_bytes}",
                )
            if not strict:
                _check_lenient(body)
            line, occurred = self._canonical(ev, rec, body, stamp)
        except Reject as r:
            shown = self._redacted_record(ev, rec, body, from_message)
            self._dead_letter(out, name, r.reason, r.detail, shown, received_at)
            return
        out.events.append(line)
        out.accepted[name] += 1
        out.delays_s.append(received_ts - occurred)

    # ------------------------------------------------------------------ one event

    def _canonical(
        self, ev: CompiledEvent, rec: dict, body: dict, received: Stamp
    ) -> tuple[bytes, float]:
        props_src = body.get("properties")
        if type(props_src) is not dict:
            props_src = body
        try:
            props = ev.adapter.validate_python(props_src)
        except ValidationError as exc:
            raise Reject("validation", _validation_detail(exc)) from None
        if ev.spec.extra == "allow" and props_src is body:
            props = {k: v for k, v in props.items() if k not in _ENVELOPE_KEYS}
        self._apply_pii(ev, props)
        if ev.may_nest:
            _check_nested(props, self._max_depth, 1)

        occurred = _occurred_at(body, rec, received)
        occurred_ts, occurred_at = occurred
        service = _service(rec, body)
        host = _host(rec, body)
        event_id = body.get("event_id")
        if type(event_id) is not str or not event_id or len(event_id) > MAX_EVENT_ID_CHARS:
            # With no time of its own the event's time is the receive time, which a redelivery
            # changes: leave it out, so a resent batch keeps its ids (identical time-less
            # events then share one id — give events a timestamp or an event_id).
            when = "" if occurred is received else occurred_at
            event_id = _event_id(ev.name, when, service, host, props)
        canonical: dict[str, Any] = {
            "event_id": event_id,
            "event_name": ev.name,
            "event_version": ev.spec.version,
            "occurred_at": occurred_at,
            "received_at": received[1],
            "service": service,
            "host": host,
        }
        for ent in self._entities:
            v = props.get(ent)  # declared string ids are already strings after validation
            if type(v) is str:
                # The warehouse column holds 256 characters (<= 1024 bytes): one longer id
                # would fail the COPY of a whole lake object.
                canonical[ent] = v[:MAX_TEXT_COLUMN_CHARS] or None
            elif ent in ev.drop_fields:  # `pii: drop`: not in a column either
                canonical[ent] = None
            else:
                canonical[ent] = _entity(v, props_src.get(ent), body.get(ent))
        canonical["properties"] = props
        try:
            line = orjson.dumps(canonical, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError as exc:
            # Integers and nesting are checked above (validation, `_check_nested`): what is
            # left that orjson refuses is a string with lone surrogates (invalid UTF-8).
            raise Reject("invalid_utf8", f"cannot encode event: {exc}") from None
        if len(line) > self._max_line_bytes:
            raise Reject(
                "record_too_large",
                f"event is {len(line)} bytes after normalising, limit {self._max_line_bytes}",
            )
        if b"\\u0000" in line and _holds_nul(canonical):
            raise Reject("invalid_character", "a value holds U+0000, which Redshift refuses")
        if len(line) > MAX_STRING_BYTES:  # only then can one string be longer
            _check_string_bytes(props)
        return line, occurred_ts

    def _apply_pii(self, ev: CompiledEvent, props: dict) -> None:
        for f in ev.drop_fields:
            props.pop(f, None)
        for f in ev.hash_fields:
            v = props.get(f)
            if v is not None:
                props[f] = self.hasher(v)

    def _redacted_record(self, ev: CompiledEvent, rec: dict, body: dict, from_message: bool) -> Any:
        """The record as dead-lettered: whole, but with `pii` fields dropped or hashed."""
        if not (ev.drop_fields or ev.hash_fields):
            return rec
        body = dict(body)
        props = body.get("properties")
        if type(props) is dict:
            props = dict(props)
            self._apply_pii(ev, props)
            body["properties"] = props
        self._apply_pii(ev, body)
        if from_message:
            key = "message" if type(rec.get("message")) is str else "log"
            return {**rec, key: _dumps_any(body).decode()}
        return body

    # ------------------------------------------------------------------ dead letters

    def _dead_letter(
        self, out: Extracted, name: str, reason: str, detail: str, record: Any, received_at: str
    ) -> None:
        letter = {
            "reason": reason,
            "detail": detail,
            "event_name": name or None,
            "received_at": received_at,
            "record": record,
        }
        try:
            line = _dumps_any(letter)
        except (RecursionError, ValueError, TypeError):  # a record too deep even to print
            letter["record"] = repr(record)[:4096]
            line = _dumps_any(letter)
        out.rejected.append(line + b"\n")
        out.rejects[(name, reason)] += 1


# ---------------------------------------------------------------------- helpers


def _event_name(body: dict) -> str | None:
    """The event name: `event`, `evt.name`, or `evt: {name}` — first found wins."""
    v = body.get("event")
    if type(v) is str:
        return v
    v = body.get("evt.name")
    if type(v) is str:
        return v
    evt = body.get("evt")
    if type(evt) is dict:
        v = evt.get("name")
        if type(v) is str:
            return v
    return None


def _lazy_candidates(records: LazyArray) -> list[Any]:
    """The records of a lazy array that could carry an event, materialised; the rest are noise.

    Lazy arrays come only from bodies with no event-name key anywhere (see
    :func:`ingest.decode.may_have_name_keys`), so only a `message`/`log` string holding a JSON
    object with `"ev…` can: this loop reads that one string per record and nothing else. It is
    the per-record hot path of the whole sink, hence inlined.
    """
    out = []
    for rec in records:
        if type(rec) is not LazyRecord:
            continue  # a scalar or array where a record should be: noise
        try:
            msg = rec["message"]
        except KeyError:
            msg = None
        if msg is None:  # as `extract` reads a record: a null `message` falls back to `log`
            msg = rec.get("log")
        if type(msg) is str and '"ev' in msg and msg.lstrip()[:1] == "{":
            out.append(rec.as_dict())
    return out


def _dumps_any(value: Any) -> bytes:
    """orjson, or — for what orjson refuses (lone surrogates from invalid UTF-8, integers beyond
    64 bits) — a sanitised copy: bad bytes become U+FFFD, NaN becomes null and an integer
    beyond 64 bits its decimal text (as a number, orjson and DuckDB would read it as a float,
    or fail on infinity), so a dead letter is always valid JSON that any reader (DuckDB,
    Redshift, jq) accepts."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(_json_safe(value), ensure_ascii=False, default=str).encode()


def _json_safe(v: Any) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
        return str(v)
    if isinstance(v, dict):
        return {_json_safe(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def _check_lenient(v: Any, depth: int = 0) -> None:
    """Reject what only the lenient parser lets through: NaN/Infinity, integers beyond 64 bits,
    and strings holding invalid UTF-8 (surrogate-escaped bytes)."""
    if isinstance(v, str):
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise Reject("invalid_utf8", "string is not valid UTF-8") from None
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise Reject("non_finite_number", "NaN or Infinity is not a JSON number")
    elif isinstance(v, int) and not isinstance(v, bool):
        if not -(2**63) <= v < 2**63:
            raise Reject("number_out_of_range", "integer outside the 64-bit range")
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_lenient(k, depth)
            _check_lenient(x, depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_lenient(x, depth + 1)


def _check_nested(v: Any, limit: int, depth: int) -> None:
    """What validation does not bound in free-form values (`object`/`array` fields, kept
    undeclared fields): nesting at most `limit` levels, integers within 64 signed bits, keys
    non-empty and at most MAX_KEY_BYTES. Stops at the limit, so recursion stays bounded."""
    if depth > limit:
        raise Reject("too_deep", f"properties nest more than {limit} levels")
    if type(v) is dict:
        for k, x in v.items():
            if not k or (len(k) > MAX_KEY_BYTES // 4 and _utf8_len(k) > MAX_KEY_BYTES):
                raise Reject(
                    "invalid_key", f"key {k[:64]!r} is empty or above {MAX_KEY_BYTES} bytes"
                )
            _check_value(x, limit, depth)
    else:
        for x in v:
            _check_value(x, limit, depth)


def _check_value(x: Any, limit: int, depth: int) -> None:
    t = type(x)
    if t is dict or t is list:
        _check_nested(x, limit, depth + 1)
    elif t is int and not INT64_MIN <= x <= INT64_MAX:
        raise Reject("number_out_of_range", "integer outside the 64-bit signed range")


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def _holds_nul(v: Any) -> bool:
    """Does any string or key hold U+0000? (The line's `\\u0000` may also be the six
    characters of an escaped backslash followed by "u0000": this walk tells them apart.)"""
    if type(v) is str:
        return "\x00" in v
    if type(v) is dict:
        return any("\x00" in k or _holds_nul(x) for k, x in v.items())
    if type(v) is list:
        return any(_holds_nul(x) for x in v)
    return False


def _check_string_bytes(v: Any) -> None:
    """Every string and key within MAX_STRING_BYTES of UTF-8 (a SUPER string is a VARCHAR)."""
    if type(v) is str:
        if len(v) > MAX_STRING_BYTES // 4 and _utf8_len(v) > MAX_STRING_BYTES:
            raise Reject(
                "value_too_large",
                f"a string of {_utf8_len(v)} bytes, above the warehouse's {MAX_STRING_BYTES}",
            )
    elif type(v) is dict:
        for k, x in v.items():
            _check_string_bytes(k)
            _check_string_bytes(x)
    elif type(v) is list:
        for x in v:
            _check_string_bytes(x)


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "event"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _iso(dt: datetime) -> str:
    """The one text form of a time in a lake line: RFC 3339 UTC with microseconds,
    2026-11-23T08:30:00.123456Z. `dt` is UTC (naive or aware); the text is rendered from its
    fields (`isoformat` pads the year to four digits), never taken from the input's text."""
    if dt.microsecond:  # (cheaper than isoformat's timespec="microseconds")
        return dt.isoformat()[:26] + "Z"
    return dt.isoformat()[:19] + ".000000Z"


Stamp = tuple[float, str]  # (epoch seconds, canonical RFC 3339 text)


def parse_timestamp(v: Any) -> Stamp | None:
    """RFC 3339 / ISO 8601 text or epoch seconds/milliseconds/µs/ns → (epoch seconds, canonical
    UTC text), the text rendered from the parsed numbers whatever shape the input had.

    Returns None when `v` is absent; raises Reject when it is present but unreadable (including
    any non-ASCII character: `str.isdigit` and `float` accept other scripts' digits) or outside
    1970–2200 — on every path, text, epoch numbers and epoch strings alike.
    """
    if v is None:
        return None
    t = type(v)
    if t is str:
        return _from_text(v)
    if t is int or t is float:
        return _from_epoch(v)
    if t is bool:
        raise Reject("invalid_timestamp", f"timestamp {v!r} is not a time")
    raise Reject("invalid_timestamp", f"timestamp of type {t.__name__} is not a time")


def _from_text(v: str) -> Stamp:
    if not v.isascii():
        raise Reject("invalid_timestamp", f"timestamp {v[:64]!r} has non-ASCII characters")
    s = v.strip()
    fast = _fast_utc(s)
    if fast is not None:
        return fast
    if s.replace(".", "", 1).isdigit():  # ASCII digits only: checked above
        return _from_epoch(float(s))
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", s))
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except ValueError:
        raise Reject("invalid_timestamp", f"timestamp {v[:64]!r} is not RFC 3339") from None
    except OverflowError:  # an offset pushing 0001-01-01 or 9999-12-31 off the calendar
        raise Reject("invalid_timestamp", f"timestamp {v[:64]!r} is out of range") from None
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        raise Reject("invalid_timestamp", f"timestamp {v[:64]!r} is outside 1970-2200")
    return dt.timestamp(), _iso(dt)


def _fast_utc(s: str) -> Stamp | None:
    """The common shape, `YYYY-MM-DDTHH:MM:SS[.digits]Z` (Vector, most loggers), cheaply: the
    shape is matched exactly (ASCII digits, no week or ordinal dates), the fields parsed into a
    datetime (which checks the calendar) and the text rendered from it. None when `s` has
    another shape: then the general parser decides."""
    m = _FAST_UTC.fullmatch(s)
    if m is None:
        return None
    date, clock, frac = m.groups()
    try:  # at most 6 fraction digits: microseconds, the rest cut as before
        dt = datetime.fromisoformat(f"{date}T{clock}{frac[:7]}" if frac else f"{date}T{clock}")
    except ValueError:  # 2026-02-30, 25:00, a leap second
        raise Reject("invalid_timestamp", f"timestamp {s[:64]!r} is not a valid time") from None
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        raise Reject("invalid_timestamp", f"timestamp {s[:64]!r} is outside 1970-2200")
    return (dt - _EPOCH).total_seconds(), _iso(dt)


def _from_epoch(x: int | float) -> Stamp:
    try:
        x = float(x)
    except OverflowError:  # an integer beyond any float
        raise Reject("invalid_timestamp", "timestamp is out of range") from None
    if not math.isfinite(x):
        raise Reject("invalid_timestamp", "timestamp is not finite")
    ax = abs(x)
    if ax >= 1e17:
        x /= 1e9  # nanoseconds
    elif ax >= 1e14:
        x /= 1e6  # microseconds
    elif ax >= 1e11:
        x /= 1e3  # milliseconds
    if not _MIN_TS <= x < _MAX_TS:
        raise Reject("invalid_timestamp", f"timestamp {x!r} is outside 1970-2200")
    dt = datetime.fromtimestamp(x, UTC)
    if dt.year > _MAX_YEAR:  # rounded up to the microsecond, onto 2200-01-01
        raise Reject("invalid_timestamp", f"timestamp {x!r} is outside 1970-2200")
    return x, _iso(dt)


def _occurred_at(body: dict, rec: dict, received: Stamp) -> Stamp:
    for key in ("timestamp", "time", "ts"):
        if key in body:
            ts = parse_timestamp(body[key])
            if ts is not None:
                return ts
    if rec is not body:
        for key in ("timestamp", "date"):  # Vector/Datadog envelope; Fluent Bit's `date`
            if key in rec:
                try:
                    ts = parse_timestamp(rec[key])
                except Reject:
                    ts = None  # a strange envelope time is not the event's fault
                if ts is not None:
                    return ts
    return received


def _str_or_none(v: Any) -> str | None:
    """A usable service/host/entity text: a string cut to the column's 256 characters, or a
    64-bit integer; anything else (and a string holding U+0000) is no value."""
    if type(v) is str:
        return v[:MAX_TEXT_COLUMN_CHARS] if v and "\x00" not in v else None
    if type(v) is int and INT64_MIN <= v <= INT64_MAX:
        return str(v)
    return None


def _service(rec: dict, body: dict) -> str | None:
    s = _str_or_none(rec.get("service"))
    if s:
        return s
    k8s = rec.get("kubernetes")
    if type(k8s) is dict:
        labels = k8s.get("pod_labels")  # Vector kubernetes_logs
        if type(labels) is not dict:
            labels = k8s.get("labels")  # Fluent Bit's kubernetes filter
        if type(labels) is dict:
            s = _str_or_none(labels.get("app")) or _str_or_none(
                labels.get("app.kubernetes.io/name")
            )
            if s:
                return s
        s = _str_or_none(k8s.get("container_name"))
        if s:
            return s
    if body is not rec:
        return _str_or_none(body.get("service"))
    return None


def _host(rec: dict, body: dict) -> str | None:
    s = _str_or_none(rec.get("hostname")) or _str_or_none(rec.get("host"))
    if s:
        return s
    if body is not rec:
        s = _str_or_none(body.get("hostname")) or _str_or_none(body.get("host"))
        if s:
            return s
    k8s = rec.get("kubernetes")
    if type(k8s) is dict:  # the node: Vector's pod_node_name, Fluent Bit's host
        return _str_or_none(k8s.get("pod_node_name")) or _str_or_none(k8s.get("host"))
    return None


def _entity(*candidates: Any) -> str | None:
    """The first string or integer candidate, as `_str_or_none` reads it."""
    for v in candidates:
        if type(v) is str or type(v) is int:
            return _str_or_none(v)
    return None


def _event_id(
    name: str, occurred_at: str, service: str | None, host: str | None, props: dict
) -> str:
    """A redelivered record must get the same id, so it is a hash of what the event says."""
    h = hashlib.blake2b(digest_size=16)
    # surrogatepass: `service`/`host` come from the envelope, which for a record read by the
    # lenient parser may hold invalid UTF-8; the event is then rejected as `invalid_utf8` when
    # it is serialised, instead of failing here (the catch-all "internal" dead letter).
    head = f"{name}\x1f{occurred_at}\x1f{service or ''}\x1f{host or ''}\x1f"
    h.update(head.encode("utf-8", "surrogatepass"))
    h.update(orjson.dumps(props, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


# ---------------------------------------------------------------------- the contract, as code

_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def canonical_problems(line: bytes, entities: tuple[str, ...]) -> list[str]:
    """Everything wrong with `line` as a lake event line; empty when it is canonical.

    The canonical form, column by column (what DuckDB's `read_json` and Redshift's COPY JSON
    'auto' both load): one JSON object on one line ending in a newline, at most MAX_LINE_BYTES,
    its keys exactly the `events` columns in table order;
    `event_id` a string of 1..128 characters; `event_name` a registry name; `event_version` an
    INTEGER; `occurred_at`/`received_at` `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a real UTC time in
    1970..2199; `service`, `host` and the entity columns null or 1..256 characters; no string
    or key anywhere holding U+0000; `properties` an object whose strings and keys are at most
    MAX_STRING_BYTES, keys non-empty and at most MAX_KEY_BYTES, integers within 64 signed bits,
    floats finite, nesting at most MAX_PROPERTIES_DEPTH. Ingest writes nothing else
    (`Extractor` rejects what it cannot make so); tests and the fuzz harness check it here.
    """
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        return ["not exactly one line ending in a newline"]
    if len(line) > MAX_LINE_BYTES:
        return [f"line of {len(line)} bytes, above {MAX_LINE_BYTES}"]
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if type(row) is not dict:
        return ["not a JSON object"]
    columns = ["event_id", "event_name", "event_version", "occurred_at", "received_at",
               "service", "host", *entities, "properties"]  # fmt: skip
    if list(row) != columns:
        return [f"columns {list(row)} are not {columns}"]
    problems: list[str] = []
    eid = row["event_id"]
    if type(eid) is not str or not 0 < len(eid) <= MAX_EVENT_ID_CHARS:
        problems.append(f"event_id {eid!r:.80} is not a string of 1..{MAX_EVENT_ID_CHARS}")
    name = row["event_name"]
    if type(name) is not str or len(name) > 127 or not EVENT_NAME_RE.match(name):
        problems.append(f"event_name {name!r:.80} is not a registry name")
    version = row["event_version"]
    if type(version) is not int or not 1 <= version <= 2**31 - 1:
        problems.append(f"event_version {version!r} is not a positive INTEGER")
    for col in ("occurred_at", "received_at"):
        problems += _time_problems(col, row[col])
    for col in ("service", "host", *entities):
        v = row[col]
        if v is not None and (type(v) is not str or not 0 < len(v) <= MAX_TEXT_COLUMN_CHARS):
            problems.append(f"{col} {v!r:.80} is not null or 1..{MAX_TEXT_COLUMN_CHARS} chars")
    if type(row["properties"]) is not dict:
        problems.append("properties is not an object")
    problems += _value_problems(row, 0)
    return problems


def _time_problems(col: str, v: Any) -> list[str]:
    if type(v) is not str or not _CANONICAL_TIME.fullmatch(v):
        return [f"{col} {v!r:.80} is not YYYY-MM-DDTHH:MM:SS.ffffffZ"]
    try:
        dt = datetime.fromisoformat(v[:-1])
    except ValueError:
        return [f"{col} {v!r} is not a valid time"]
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        return [f"{col} {v!r} is outside 1970..{_MAX_YEAR}"]
    return []


def _value_problems(v: Any, depth: int) -> list[str]:
    """Bounds of every value of the line (`depth` 1 is `properties` itself)."""
    t = type(v)
    if t is str:
        if "\x00" in v:
            return [f"string {v!r:.60} holds U+0000"]
        if _utf8_len(v) > MAX_STRING_BYTES:
            return [f"string of {_utf8_len(v)} bytes, above {MAX_STRING_BYTES}"]
        return []
    if t is int:
        return [] if INT64_MIN <= v <= INT64_MAX else [f"integer {v} beyond 64 bits"]
    if t is float:
        return [] if math.isfinite(v) else [f"float {v} is not finite"]
    if v is None or t is bool:
        return []
    if depth > MAX_PROPERTIES_DEPTH:
        return [f"properties nest more than {MAX_PROPERTIES_DEPTH} levels"]
    out: list[str] = []
    if t is dict:
        for k, x in v.items():
            if depth >= 1 and not 0 < _utf8_len(k) <= MAX_KEY_BYTES:
                out.append(f"key {k!r:.60} is empty or above {MAX_KEY_BYTES} bytes")
            if "\x00" in k:
                out.append(f"key {k!r:.60} holds U+0000")
            out += _value_problems(x, depth + 1)
        return out
    for x in v:
        out += _value_problems(x, depth + 1)
    return out


__all__ = [
    "BadRecord",
    "Extracted",
    "Extractor",
    "Limits",
    "Reject",
    "canonical_problems",
    "parse_timestamp",
]
