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
from ingest.registry import CompiledEvent, PiiHasher, Registry

#: Keys of an event body that describe the envelope, not the event's properties.
_ENVELOPE_KEYS = frozenset(
    {"event", "evt.name", "evt", "event_id", "timestamp", "time", "ts", "service", "host",
     "hostname", "message", "properties"}
)  # fmt: skip
_FRACTION = re.compile(r"(\.\d{6})\d+")
_EPOCH = datetime(1970, 1, 1)
#: Event times outside [1970, 2200) are not times but defaults (Go's zero time 0001-01-01,
#: 9999-12-31 sentinels); they would also overflow date arithmetic downstream.
_MIN_TS, _MAX_TS = 0.0, 7258118400.0


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
            depth = _depth(props)
            if depth > self.limits.max_json_depth:
                raise Reject(
                    "too_deep",
                    f"properties nest {depth} levels, limit {self.limits.max_json_depth}",
                )

        occurred = _occurred_at(body, rec, received)
        occurred_ts, occurred_at = occurred
        service = _service(rec, body)
        host = _host(rec, body)
        event_id = body.get("event_id")
        if type(event_id) is not str or not event_id or len(event_id) > 128:
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
            # Cut like `_entity` does: the warehouse column holds 256 characters (<= 1024 bytes)
            # and one longer id would fail the COPY of a whole lake object.
            canonical[ent] = (
                (v[:256] or None)
                if type(v) is str
                else _entity(v, props_src.get(ent), body.get(ent))
            )
        canonical["properties"] = props
        try:
            line = orjson.dumps(canonical, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError as exc:
            reason = "number_out_of_range" if "Integer" in str(exc) else "invalid_utf8"
            raise Reject(reason, f"cannot encode event: {exc}") from None
        if len(line) > self.limits.max_record_bytes:
            raise Reject("record_too_large", f"event is {len(line)} bytes after normalising")
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
    64 bits) — a sanitised copy: bad bytes become U+FFFD and NaN becomes null, so a dead letter
    is always valid JSON that any reader (DuckDB, Redshift, jq) accepts."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(_json_safe(value), ensure_ascii=False, default=str).encode()


def _json_safe(v: Any) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(v, float) and not math.isfinite(v):
        return None
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


def _depth(v: Any) -> int:
    if type(v) is dict:
        return 1 + max((_depth(x) for x in v.values() if type(x) in (dict, list)), default=0)
    if type(v) is list:
        return 1 + max((_depth(x) for x in v if type(x) in (dict, list)), default=0)
    return 0


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "event"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _iso(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds: 2026-11-23T08:30:00.123456Z (dt must be UTC)."""
    return dt.isoformat(timespec="microseconds")[:26] + "Z"


Stamp = tuple[float, str]  # (epoch seconds, canonical RFC 3339 text)


def parse_timestamp(v: Any) -> Stamp | None:
    """RFC 3339 text or epoch seconds/milliseconds/µs/ns → (epoch seconds, canonical UTC text).

    Returns None when `v` is absent; raises Reject when it is present but unreadable or outside
    1970–2200.
    """
    stamp = _parse_timestamp(v)
    if stamp is not None and not _MIN_TS <= stamp[0] < _MAX_TS:
        raise Reject("invalid_timestamp", f"timestamp {str(v)[:64]!r} is outside 1970-2200")
    return stamp


def _parse_timestamp(v: Any) -> Stamp | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise Reject("invalid_timestamp", f"timestamp {v!r} is not a time")
    if isinstance(v, int | float):
        return _from_epoch(float(v))
    if isinstance(v, str):
        s = v.strip()
        fast = _fast_utc(s)
        if fast is not None:
            return fast
        if s.replace(".", "", 1).isdigit():
            return _from_epoch(float(s))
        try:
            dt = datetime.fromisoformat(_FRACTION.sub(r"\1", s))
        except ValueError:
            raise Reject("invalid_timestamp", f"timestamp {v[:64]!r} is not RFC 3339") from None
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        return dt.timestamp(), _iso(dt)
    raise Reject("invalid_timestamp", f"timestamp of type {type(v).__name__} is not a time")


def _fast_utc(s: str) -> Stamp | None:
    """The common shape, `YYYY-MM-DDTHH:MM:SS[.digits]Z` (Vector, most loggers), without any
    datetime formatting: validate the date, then build the text from the input's own slices."""
    n = len(s)
    if n < 20 or s[-1] not in "Zz" or s[10] not in "Tt " or (n > 20 and s[19] != "."):
        return None
    frac = s[20:-1]
    if frac and not frac.isdigit():
        return None
    head = s[:19] if s[10] == "T" else f"{s[:10]}T{s[11:19]}"
    try:
        base = datetime.fromisoformat(head)
    except ValueError:
        return None
    us = (frac + "000000")[:6]
    epoch_s = (base - _EPOCH).total_seconds() + int(us) / 1e6
    return epoch_s, f"{head}.{us}Z"


def _from_epoch(x: float) -> Stamp:
    if not math.isfinite(x):
        raise Reject("invalid_timestamp", "timestamp is not finite")
    ax = abs(x)
    if ax >= 1e17:
        x /= 1e9  # nanoseconds
    elif ax >= 1e14:
        x /= 1e6  # microseconds
    elif ax >= 1e11:
        x /= 1e3  # milliseconds
    try:
        return x, _iso(datetime.fromtimestamp(x, UTC))
    except (OverflowError, OSError, ValueError):
        raise Reject("invalid_timestamp", f"timestamp {x!r} is out of range") from None


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
    if type(v) is str:
        return v[:256] or None
    if type(v) is int:
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
    for v in candidates:
        if v is None:
            continue
        if type(v) is str:
            return v[:256] if v else None
        if type(v) is int:
            return str(v)
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


__all__ = ["BadRecord", "Extracted", "Extractor", "Limits", "Reject", "parse_timestamp"]
