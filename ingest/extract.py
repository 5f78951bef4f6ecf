"""Stage 3: records → canonical registry events (:mod:`ingest.event`), dead letters, counts.

The hot path is shaped by the data: ~90% of records are noise logs. A record is only parsed
further when it can carry an event name — its own ``event``/``evt`` keys, or a ``message`` string
that starts with ``{`` and contains ``"ev`` — and pydantic only ever sees records whose name is in
the registry. Everything is counted per batch, not per record.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ingest.event import (
    ENVELOPE_KEYS,
    ENVELOPE_TIME_KEYS,
    EVENT_ID_KEY,
    EVENT_ID_MAX_CHARS,
    EVENT_NAME_KEYS,
    INT64_MAX,
    INT64_MIN,
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    MAX_PROPERTIES_DEPTH,
    MAX_STRING_BYTES,
    MESSAGE_KEYS,
    PROPERTIES_KEY,
    TEXT_MAX_CHARS,
    TIME_KEYS,
    DiscardReason,
    Reject,
    RejectReason,
    iso_utc,
    utf8_len,
)
from ingest.lake import keys
from ingest.records import LazyArray, LazyRecord, ParsedBody, parse_lenient
from ingest.registry import CompiledEvent, PiiHasher, Registry
from ingest.timestamps import Stamp, parse_timestamp

_NAME_KEY, _DOTTED_NAME_KEY, _NESTED_NAME_KEY = EVENT_NAME_KEYS
_MESSAGE_KEY, _LOG_KEY = MESSAGE_KEYS


@dataclass(slots=True)
class Extracted:
    """The outcome of one piece of a batch, ready for the spool and the metrics."""

    events: list[bytes] = field(default_factory=list)  # canonical NDJSON lines
    rejected: list[bytes] = field(default_factory=list)  # dead-letter NDJSON lines
    accepted: Counter[str] = field(default_factory=Counter)  # by event name
    discarded: Counter[str] = field(default_factory=Counter)  # by reason
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (event, reason)
    delays_s: list[float] = field(default_factory=list)  # received_at - occurred_at


#: Outputs up to this size are spooled as one item per stream; larger ones in their pieces,
#: so a request producing hundreds of MiB of events never holds them twice.
_JOIN_OUTPUT_BYTES = 4 * 1024 * 1024


@dataclass
class Batch:
    """What extraction made of a whole request, piece by piece (see records.parse_steps)."""

    nrecords: int = 0
    events: list[bytes] = field(default_factory=list)  # NDJSON, one item per piece
    rejected: list[bytes] = field(default_factory=list)
    nbytes: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    discarded: Counter[str] = field(default_factory=Counter)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)
    delays_s: array[float] = field(default_factory=lambda: array("d"))  # 8 bytes per event

    def add(self, parsed: ParsedBody, ex: Extracted) -> None:
        self.nrecords += len(parsed.records) + len(parsed.bad)
        for lines, out in ((ex.events, self.events), (ex.rejected, self.rejected)):
            if lines:
                part = b"".join(lines)
                out.append(part)
                self.nbytes += len(part)
        self.accepted.update(ex.accepted)
        self.discarded.update(ex.discarded)
        self.rejects.update(ex.rejects)
        self.delays_s.extend(ex.delays_s)

    def spool_items(self, partition: str) -> list[tuple[str, str, bytes]]:
        """(stream, partition, data) items for :meth:`ingest.spool.Spool.append`."""
        items: list[tuple[str, str, bytes]] = []
        for stream, parts in ((keys.EVENTS, self.events), (keys.REJECTED, self.rejected)):
            if sum(map(len, parts)) <= _JOIN_OUTPUT_BYTES:
                parts = [b"".join(parts)]
            items.extend((stream, partition, part) for part in parts if part)
        return items


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
        received_at = iso_utc(received.astimezone(UTC))
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
                msg = rec.get(_MESSAGE_KEY)
                if msg is None:
                    msg = rec.get(_LOG_KEY)  # Fluent Bit's tail input names the line `log`
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
                out.discarded[DiscardReason.UNREGISTERED_EVENT] += 1
                continue
            # --- a registry event: validate, build, serialise; any failure rejects it alone,
            # never the batch (docs/architecture.md#status-codes)
            try:
                self._one(out, ev, name, rec, body, msg if from_message else None, strict, stamp)
            except Exception as exc:
                too_deep = isinstance(exc, RecursionError)
                reason = RejectReason.TOO_DEEP if too_deep else RejectReason.INTERNAL
                self._dead_letter(out, name, reason, f"{type(exc).__name__}: {exc}"[:300],
                                  {"unprintable_record": True}, received_at)  # fmt: skip
        if noise:
            out.discarded[DiscardReason.NO_EVENT_NAME] += noise
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
                    RejectReason.RECORD_TOO_LARGE,
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
        props_src = body.get(PROPERTIES_KEY)
        if type(props_src) is not dict:
            props_src = body
        try:
            props = ev.adapter.validate_python(props_src)
        except ValidationError as exc:
            raise Reject(RejectReason.VALIDATION, _validation_detail(exc)) from None
        if ev.spec.extra == "allow" and props_src is body:
            props = {k: v for k, v in props.items() if k not in ENVELOPE_KEYS}
        self._apply_pii(ev, props)
        if ev.may_nest:
            _check_nested(props, self._max_depth, 1)

        occurred = _occurred_at(body, rec, received)
        occurred_ts, occurred_at = occurred
        service = _service(rec, body)
        host = _host(rec, body)
        event_id = body.get(EVENT_ID_KEY)
        if type(event_id) is not str or not event_id or len(event_id) > EVENT_ID_MAX_CHARS:
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
                canonical[ent] = _cut(v)
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
            raise Reject(RejectReason.INVALID_UTF8, f"cannot encode event: {exc}") from None
        if len(line) > self._max_line_bytes:
            raise Reject(
                RejectReason.RECORD_TOO_LARGE,
                f"event is {len(line)} bytes after normalising, limit {self._max_line_bytes}",
            )
        if b"\\u0000" in line and _holds_nul(canonical):
            raise Reject(
                RejectReason.INVALID_CHARACTER, "a value holds U+0000, which Redshift refuses"
            )
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
        props = body.get(PROPERTIES_KEY)
        if type(props) is dict:
            props = dict(props)
            self._apply_pii(ev, props)
            body[PROPERTIES_KEY] = props
        self._apply_pii(ev, body)
        if from_message:
            key = _MESSAGE_KEY if type(rec.get(_MESSAGE_KEY)) is str else _LOG_KEY
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
    v = body.get(_NAME_KEY)
    if type(v) is str:
        return v
    v = body.get(_DOTTED_NAME_KEY)
    if type(v) is str:
        return v
    evt = body.get(_NESTED_NAME_KEY)
    if type(evt) is dict:
        v = evt.get("name")
        if type(v) is str:
            return v
    return None


def _lazy_candidates(records: LazyArray) -> list[Any]:
    """The records of a lazy array that could carry an event, materialised; the rest are noise.

    Lazy arrays come only from bodies with no event-name key anywhere (see
    :func:`ingest.records.may_have_name_keys`), so only a `message`/`log` string holding a JSON
    object with `"ev…` can: this loop reads that one string per record and nothing else. It is
    the per-record hot path of the whole sink, hence inlined.
    """
    out = []
    message_key, log_key = _MESSAGE_KEY, _LOG_KEY
    for rec in records:
        if type(rec) is not LazyRecord:
            continue  # a scalar or array where a record should be: noise
        try:
            msg = rec[message_key]
        except KeyError:
            msg = None
        if msg is None:  # as `extract` reads a record: a null `message` falls back to `log`
            msg = rec.get(log_key)
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


def _check_lenient(v: Any) -> None:
    """Reject what only the lenient parser lets through: NaN/Infinity, integers beyond 64 bits,
    and strings holding invalid UTF-8 (surrogate-escaped bytes)."""
    if isinstance(v, str):
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise Reject(RejectReason.INVALID_UTF8, "string is not valid UTF-8") from None
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise Reject(RejectReason.NON_FINITE_NUMBER, "NaN or Infinity is not a JSON number")
    elif isinstance(v, int) and not isinstance(v, bool):
        if not INT64_MIN <= v <= INT64_MAX:
            raise Reject(RejectReason.NUMBER_OUT_OF_RANGE, "integer outside the 64-bit range")
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_lenient(k)
            _check_lenient(x)
    elif isinstance(v, list):
        for x in v:
            _check_lenient(x)


def _check_nested(v: Any, limit: int, depth: int) -> None:
    """What validation does not bound in free-form values (`object`/`array` fields, kept
    undeclared fields): nesting at most `limit` levels, integers within 64 signed bits, keys
    non-empty and at most MAX_KEY_BYTES. Stops at the limit, so recursion stays bounded."""
    if depth > limit:
        raise Reject(RejectReason.TOO_DEEP, f"properties nest more than {limit} levels")
    if type(v) is dict:
        for k, x in v.items():
            if not k or (len(k) > MAX_KEY_BYTES // 4 and utf8_len(k) > MAX_KEY_BYTES):
                raise Reject(
                    RejectReason.INVALID_KEY,
                    f"key {k[:64]!r} is empty or above {MAX_KEY_BYTES} bytes",
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
        raise Reject(RejectReason.NUMBER_OUT_OF_RANGE, "integer outside the 64-bit signed range")


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
        if len(v) > MAX_STRING_BYTES // 4 and utf8_len(v) > MAX_STRING_BYTES:
            raise Reject(
                RejectReason.VALUE_TOO_LARGE,
                f"a string of {utf8_len(v)} bytes, above the warehouse's {MAX_STRING_BYTES}",
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


def _occurred_at(body: dict, rec: dict, received: Stamp) -> Stamp:
    for key in TIME_KEYS:
        if key in body:
            ts = parse_timestamp(body[key])
            if ts is not None:
                return ts
    if rec is not body:
        for key in ENVELOPE_TIME_KEYS:  # Vector/Datadog envelope; Fluent Bit's `date`
            if key in rec:
                try:
                    ts = parse_timestamp(rec[key])
                except Reject:
                    ts = None  # a strange envelope time is not the event's fault
                if ts is not None:
                    return ts
    return received


def _cut(v: str) -> str | None:
    """A text column's value (service, host, entities): the warehouse column holds
    TEXT_MAX_CHARS characters, and one longer value would fail the COPY of a whole lake
    object, so it is cut; an empty string is no value."""
    return v[:TEXT_MAX_CHARS] or None


def _str_or_none(v: Any) -> str | None:
    """A usable service/host/entity text: a string (see `_cut`) or a 64-bit integer; anything
    else (and a string holding U+0000) is no value."""
    if type(v) is str:
        return _cut(v) if "\x00" not in v else None
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
