"""Coverage-guided fuzzing of :mod:`ingest.decompress` and :mod:`ingest.records` (atheris =
libFuzzer for Python).

    python tests/fuzz/fuzz_decode.py -atheris_runs=200000                    # a quick run
    mkdir -p /tmp/corpus-decode
    python tests/fuzz/fuzz_decode.py -max_total_time=600 /tmp/corpus-decode tests/fuzz/seeds/decode
    python tests/fuzz/fuzz_decode.py tests/fuzz/regressions/decode/*         # replay, exit 0

The first corpus directory collects new inputs, the others are read-only seeds. A failing input
is saved as `crash-<sha1>`: fix the bug, then add the file to tests/fuzz/regressions/decode/
(tests/fuzz/test_fuzz_smoke.py replays every file there).

An input is `[selector][knob][payload...]`: selector % 8 picks the Content-Encoding (the last one
is unknown: 415) and selector // 8 % 4 the property checked:

0. the payload *as a body* of that encoding: only RequestError (400, 413, 415 — each with its
   reason) may come out, never more than `limit` bytes, the same in bounded steps as at once;
   what decodes is parsed in every body format, where only a 400 may come out and every record
   is counted once — and the server's parser in steps (chunks of 16-271 bytes) counts the same
   records and fails on the same bodies as the whole-body parser;
1. round trip: the payload compressed (in 1-4 gzip members / zstd frames) decodes to exactly
   the payload, or to a 413 exactly when it is longer than `limit`;
2. truncation: the compressed payload cut short (where the knob says) is a 400, never a
   shorter body;
3. body formats: text lines end at \\n only; JSON the two readers (lazy simdjson, orjson) and
   NDJSON agree with a reference parser.

`limit` is 2 ** (knob % 21) bytes.
"""

from __future__ import annotations

import gzip
import sys
import zlib

import _common  # first: puts the repository on sys.path
import atheris

with atheris.instrument_imports(include=["ingest"]):
    from ingest.decompress import STEP_OUT_BYTES, decompress, decompress_steps
    from ingest.records import BodyFormat, parse_records, parse_steps
    from ingest.status import DECISIONS, RequestError

import cramjam
import orjson
import zstandard

from tests.payloads import plain

ENCODINGS = ["identity", "gzip", "x-gzip", "deflate", "zstd", "snappy", "x-snappy", "br"]
REASONS = {400: {"bad_compression"}, 413: {"decompressed_too_large"}, 415: {"unsupported_encoding"}}
_ZSTD = zstandard.ZstdCompressor(level=3)


def compress(data: bytes, enc: str, pieces: int = 1) -> bytes:
    if enc == "identity":
        return data
    if enc in ("gzip", "x-gzip", "zstd") and pieces > 1 and data:
        step = -(-len(data) // pieces)
        return b"".join(compress(data[i : i + step], enc) for i in range(0, len(data), step))
    if enc in ("gzip", "x-gzip"):
        return gzip.compress(data, compresslevel=1, mtime=0)
    if enc == "deflate":
        return zlib.compress(data, 1)
    if enc == "zstd":
        return _ZSTD.compress(data)
    if enc in ("snappy", "x-snappy"):
        return bytes(cramjam.snappy.compress_raw(data))
    raise ValueError(enc)


def check_parse(data: bytes, chunk_bytes: int) -> None:
    for fmt in BodyFormat:
        stepped = check_steps(data, fmt, chunk_bytes)
        try:
            parsed = parse_records(data, fmt)
        except RequestError as exc:
            assert exc.status == 400 and exc.reason == "invalid_body", exc.reason
            assert fmt is BodyFormat.JSON, f"{fmt} bodies are always decodable"
            assert stepped is None, "the stepped parser took a body the whole one refused"
            continue
        assert stepped == len(parsed.records) + len(parsed.bad), (fmt, stepped)
        n = len(parsed.records)
        assert all(0 <= i < n for i in parsed.lenient)
        for bad in parsed.bad:
            assert bad.reason in ("invalid_json", "invalid_utf8", "too_deep"), bad.reason
            assert len(bad.raw) <= 4096
        if fmt is not BodyFormat.JSON:
            lines = [ln for ln in data.split(b"\n") if ln.strip()]
            if fmt is BodyFormat.NDJSON:
                assert n + len(parsed.bad) == len(lines)


def check_steps(data: bytes, fmt: BodyFormat, chunk_bytes: int) -> int | None:
    """Records (and dead letters) counted by the server's stepped parser; None on a 400."""
    n = 0
    try:
        for piece in parse_steps(data, fmt, 1 << 20, chunk_bytes):
            if piece is None:
                continue
            assert all(0 <= i < len(piece.records) for i in piece.lenient)
            for bad in piece.bad:
                assert bad.reason in ("invalid_json", "invalid_utf8", "too_deep"), bad.reason
            n += len(piece.records) + len(piece.bad)
    except RequestError as exc:
        assert exc.status == 400 and exc.reason == "invalid_body", exc.reason
        return None
    return n


def check_decompress_steps(payload: bytes, enc: str, limit: int, out: bytes) -> None:
    pieces = list(decompress_steps(payload, enc, limit))
    assert b"".join(pieces) == out
    assert all(len(p) <= STEP_OUT_BYTES for p in pieces) or enc == "identity"


def check_formats(data: bytes) -> None:
    # Text: one record per \n-terminated line (\r\n too), invalid UTF-8 replaced.
    text = data.decode("utf-8", "replace")
    expected = [{"message": ln.removesuffix("\r")} for ln in text.split("\n") if ln.strip()]
    assert parse_records(data, BodyFormat.TEXT).records == expected
    # JSON: whatever orjson reads as an array or an object comes back the same.
    try:
        ref = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(ref, list | dict):
        return
    parsed = parse_records(data, BodyFormat.JSON)
    if isinstance(ref, dict):
        ref = [ref] if ref else []
    assert parsed.bad == [] and not parsed.lenient
    assert plain(parsed.records) == ref
    if isinstance(ref, list) and all(isinstance(r, dict) for r in ref):
        lines = b"\n".join(orjson.dumps(r) for r in ref)
        assert parse_records(lines, BodyFormat.NDJSON).records == ref


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    enc = ENCODINGS[data[0] % len(ENCODINGS)]
    mode = data[0] // len(ENCODINGS) % 4
    knob = data[1]
    limit = 1 << (knob % 21)
    payload = data[2:]
    if enc == "br" and mode in (1, 2):
        mode = 0
    if mode == 0:
        try:
            out = decompress(payload, enc, limit)
        except RequestError as exc:
            assert exc.reason in REASONS.get(exc.status, ()), (exc.status, exc.reason)
            assert exc.status == DECISIONS[exc.reason].status
            assert (exc.status == 415) == (enc == "br")
            return
        assert len(out) <= limit
        check_decompress_steps(payload, enc, limit, out)
        check_parse(out, 16 + knob % 256)
    elif mode == 1:
        body = compress(payload, enc, pieces=1 + knob % 4)
        try:
            out = decompress(body, enc.upper() if knob & 0x80 else enc, limit)
        except RequestError as exc:
            assert exc.reason == "decompressed_too_large", exc.message
            assert len(payload) > limit
            return
        assert out == payload
    elif mode == 2:
        body = compress(payload, enc)
        if enc == "identity" or len(body) < 2:
            return
        cut = 1 + knob * (len(body) - 1) // 256
        try:
            decompress(body[:cut], enc, 1 << 20)
        except RequestError as exc:
            assert exc.reason == "bad_compression", exc.reason
        else:
            raise AssertionError(f"{enc} body cut at {cut} of {len(body)} bytes was accepted")
    else:
        check_formats(payload)


def seeds() -> dict[str, bytes]:
    """Starting inputs: every mode and encoding over batches as the senders make them."""
    sys.path.insert(0, str(_common.ROOT))
    from tests.payloads import datadog_record, noise_record, pickup, vector_record

    batch = orjson.dumps([vector_record(pickup()), noise_record(1), vector_record("plain")])
    ndjson = b"\n".join(orjson.dumps(r) for r in (datadog_record(pickup()), {"log": "x"}))
    text = b'{"event":"robot.error","robot_id":"R","error_code":"E"}\r\nplain line\n'
    out = {}
    for i, enc in enumerate(ENCODINGS):
        for mode in range(4):
            sel = bytes([mode * len(ENCODINGS) + i])
            for name, body in (("json", batch), ("ndjson", ndjson), ("text", text)):
                payload = compress(body, enc) if mode == 0 and enc != "br" else body
                out[f"{mode}-{enc}-{name}"] = sel + bytes([20]) + payload
    # Shapes that once cost quadratic time or a parser disagreement: an unterminated string
    # of quotes, deep nesting, tiny gzip members, zstd frames of nothing, escaped name keys.
    gzip_sel, zstd_sel = ENCODINGS.index("gzip"), ENCODINGS.index("zstd")
    escaped = b'[{"\\u0065vent":"robot.error","robot_id":"R","error_code":"E"},{"m":"x"}]'
    out["0-identity-unterminated-quotes"] = b"\x00\x14[" + b'\\"' * 2000
    out["0-identity-deep-nesting"] = b"\x00\x14[" + b"[" * 3000 + b"]" * 3000 + b"]"
    out["0-gzip-tiny-members"] = bytes([gzip_sel, 20]) + compress(ndjson, "gzip", pieces=64)
    out["0-zstd-empty-frames"] = bytes([zstd_sel, 20]) + _ZSTD.compress(b"") * 200
    out["3-escaped-name-keys"] = bytes([3 * len(ENCODINGS), 20]) + escaped
    return out


if __name__ == "__main__":
    _common.main(test_one_input, seeds)
