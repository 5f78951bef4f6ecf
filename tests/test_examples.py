"""The README's quick-start batch does what the README says it does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from ingest.app import build_app
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent


async def test_readme_curl_example(aiohttp_client: Any, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    promised = re.search(r'# (\{"accepted":\d+,"discarded":\d+,"rejected":\d+\})', readme)
    assert promised, "the README shows the answer to its curl example"
    client = await aiohttp_client(build_app(make_settings(tmp_path)))
    body = (ROOT / "examples" / "vector-batch.json").read_bytes()
    resp = await client.post("/v1/logs", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert await resp.json() == orjson.loads(promised.group(1))


def test_readme_config_table_is_current() -> None:
    from ingest.cli.configdoc import markdown_table

    readme = (ROOT / "README.md").read_text()
    for line in markdown_table().splitlines()[2:]:
        assert line in readme, f"README configuration table is stale: {line[:60]}"
