"""The argument tree names each command's implementation as "module:function"; these tests
hold those names to the code, and the sink's start to importing nothing of the loader."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from ingest.cli.parser import PASSTHROUGH, build_parser


def _targets(parser: argparse.ArgumentParser) -> dict[str, str]:
    out: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                target = sub.get_default("target")
                if target:
                    out[name] = target
                out.update({f"{name} {k}": v for k, v in _targets(sub).items()})
    return out


def test_every_command_names_a_function_that_exists() -> None:
    targets = {**_targets(build_parser()), **PASSTHROUGH}
    assert {"ingest", "load", "dev", "session", "supply-hours", "funnel", "ui", "demo",
            "registry check", "registry export", "registry diff", "config"} <= set(targets)  # fmt: skip
    for name, target in targets.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func, None)), name


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_the_sink_and_help_load_nothing_of_the_loader() -> None:
    """Every ingest worker starts through `ingest.cli.sink`: the warehouse drivers (and the
    loader's metrics, which would then be served by the sink) stay out of it."""
    for code in ("import ingest.cli.main, ingest.cli.sink", "import ingest.cli.parser"):
        loaded = _modules_after(code)
        leaked = {
            m for m in loaded if m.split(".")[0] in ("loader", "duckdb", "redshift_connector")
        }
        assert not leaked, (code, sorted(leaked)[:5])
    # ... and the check can fail: the loader's command does load them.
    assert "loader.server" in _modules_after("import ingest.cli.load")
