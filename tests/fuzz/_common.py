"""Shared by the atheris harnesses: the repository on sys.path, and running a harness."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as `python tests/fuzz/fuzz_*.py` from anywhere
    sys.path.insert(0, str(ROOT))


def main(test_one_input: Callable[[bytes], None], seeds: Callable[[], dict[str, bytes]]) -> None:
    """libFuzzer's command line, plus `--write-seeds DIR` to (re)write the seed corpus."""
    import atheris

    if sys.argv[1:2] == ["--write-seeds"]:
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (out / name).write_bytes(data)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
