"""The default demo day, generated once for the module that asks for it."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.demo import generate
from tests.ingest.demo.support import DAY


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generate(DAY)
