"""The atheris harnesses in CI: a short coverage-guided run of each from its seed corpus, and a
replay of every input in tests/fuzz/regressions/ (each once failed; each must pass now).

Long runs are by hand (README "Fuzzing"); a crash they find goes into regressions/<harness>/.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent
#: Executions per CI run: ~9k/s for decode, ~1k/s for extract on one core; load drives the
#: real loader and DuckDB (several load transactions per input): ~10-15/s. ~22 s in all.
RUNS = {"decode": 20_000, "extract": 4_000, "load": 150}


def run_harness(harness: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FUZZ / f"fuzz_{harness}.py"), *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        cwd=FUZZ,
    )


@pytest.mark.parametrize("harness", sorted(RUNS))
def test_short_fuzz_run_finds_nothing(harness: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = FUZZ / "seeds" / harness
    assert len(list(seeds.iterdir())) >= 5
    result = run_harness(
        harness,
        f"-atheris_runs={RUNS[harness]}",
        "-max_len=16384",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
        str(seeds),
    )
    tail = result.stderr[-4000:]
    assert result.returncode == 0, tail
    assert not list(tmp_path.glob("crash-*")), tail
    done = re.search(r"^Done (\d+) in", result.stderr, re.MULTILINE)
    assert done and int(done.group(1)) == RUNS[harness], tail
    assert any(corpus.iterdir()), "the run found no new coverage at all"


@pytest.mark.parametrize("harness", sorted(RUNS))
def test_regressions_replay(harness: str) -> None:
    files = sorted((FUZZ / "regressions" / harness).iterdir())
    assert files, "every harness has regression inputs"
    result = run_harness(harness, *map(str, files))
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("Running: ") == len(files), result.stderr[-4000:]
    assert "Uncaught Python exception" not in result.stderr
