"""The container image (Dockerfile, .dockerignore, requirements.lock), checked against the real
code: the CLI parser, the settings' defaults and environment names, and pyproject.toml.

There is no Docker engine here, so the Dockerfile is parsed (dockerfile-parse), not built."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ingest.cli.parser import build_parser
from ingest.config import IngestSettings, load_settings, parse_addr
from loader.config import LoaderSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|libc6-dev|python3?-dev|cargo|rustc)\b"
)
APP_UID = 10001


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]


def parse() -> tuple[DockerfileParser, list[Stage]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    stages: list[Stage] = []
    for item in parser.structure:
        ins, value = item["instruction"], item["value"].strip()
        if ins == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif ins != "COMMENT":
            assert stages, f"{ins} before the first FROM"
            stages[-1].instructions.append((ins, value))
    return parser, stages


def exec_form(value: str) -> list[str]:
    """ENTRYPOINT/CMD in exec (JSON) form; shell form would put `sh -c` in front and swallow
    SIGTERM, so it is refused."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), value
    return parsed


def final_stage() -> Stage:
    return parse()[1][-1]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _default_port(cls: type, field_name: str) -> int:
    return parse_addr(cls.model_fields[field_name].default)[1]


# ---------------------------------------------------------------------------- base images


def test_multi_stage_with_pinned_bases() -> None:
    parser, stages = parse()
    assert parser.is_multistage and len(stages) >= 2
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in names:  # FROM an earlier stage
            continue
        ref = stage.image
        assert "$" not in ref, f"unresolved build arg in FROM {ref}"
        if "@sha256:" in ref:
            assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", ref), ref
            continue
        repo, sep, tag = ref.rpartition(":")
        assert sep and "/" not in tag, f"FROM {ref} has no explicit tag"
        assert tag != "latest", f"FROM {ref} uses latest"
        # A Python 3.11 slim image, pinned to a patch release (3.11.N), not a moving 3.11 tag.
        assert repo.endswith("python") and re.match(r"3\.11\.\d+-slim", tag), ref


def test_no_add_from_urls() -> None:
    for stage in parse()[1]:
        for value in stage.values("ADD"):
            assert not re.search(r"(?i)\b(https?|ftp|git)://|git@", value), f"ADD {value}"


# ---------------------------------------------------------------------------- runtime stage


def test_final_stage_runs_as_fixed_non_root_uid() -> None:
    stage = final_stage()
    users = stage.values("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: need a numeric, non-zero UID"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert int(uid) == APP_UID
    # The account exists in the image with that UID (so `id`, HOME and file ownership agree).
    runs = " ".join(stage.values("RUN"))
    assert re.search(rf"useradd\b[^&;]*--uid {uid}\b", runs), "no useradd for the USER's UID"
    assert re.search(rf"groupadd\b[^&;]*--gid {APP_UID}\b", runs)


def test_entrypoint_and_cmd_match_the_cli() -> None:
    stage = final_stage()
    (entrypoint,) = stage.values("ENTRYPOINT")
    assert exec_form(entrypoint) == ["logship"]
    (cmd,) = stage.values("CMD")
    args = exec_form(cmd)
    assert args == ["ingest"]
    parser = build_parser()
    subcommands = _subcommands(parser)
    assert "ingest" in subcommands and "load" in subcommands  # the parser was found
    if args[0] != "demo":  # `demo` is dispatched before argparse (ingest/cli/main.py)
        assert args[0] in subcommands
        parsed = parser.parse_args(args)  # raises SystemExit on anything the CLI refuses
        assert parsed.command == args[0]


def test_the_console_script_is_logship() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["logship"] == "ingest.cli.main:main"


def test_exposes_the_default_ports_and_listens_on_all_interfaces() -> None:
    stage = final_stage()
    exposed = {int(p.split("/")[0]) for v in stage.values("EXPOSE") for p in v.split()}
    ingest_port = _default_port(IngestSettings, "http_addr")
    loader_port = _default_port(LoaderSettings, "loader_http_addr")
    assert {ingest_port, loader_port} <= exposed, (exposed, ingest_port, loader_port)
    env = DockerfileParser(path=str(DOCKERFILE)).envs  # the final stage's ENV
    assert parse_addr(env["LOGSHIP_HTTP_ADDR"]) == ("0.0.0.0", ingest_port)
    assert parse_addr(env["LOGSHIP_LOADER_HTTP_ADDR"]) == ("0.0.0.0", loader_port)


def test_env_names_are_real_settings_and_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LOGSHIP_* variable the image sets is a real setting, and the settings load with
    them (a typo would be silently ignored by pydantic-settings: extra="ignore")."""
    env = DockerfileParser(path=str(DOCKERFILE)).envs
    known = {
        f"{cls.model_config['env_prefix']}{name}".upper()
        for cls in (IngestSettings, LoaderSettings)
        for name in cls.model_fields
    }
    ours = {k: v for k, v in env.items() if k.startswith("LOGSHIP_")}
    assert ours and set(ours) <= known, sorted(set(ours) - known)
    for k, v in ours.items():
        monkeypatch.setenv(k, v)
    ingest = load_settings(IngestSettings)
    loader = load_settings(LoaderSettings)
    assert ingest.http_addr == "0.0.0.0:8080" and loader.loader_http_addr == "0.0.0.0:8081"
    # Everything written lands under the one volume (the chart's root filesystem is read-only).
    (volume,) = [p for v in final_stage().values("VOLUME") for p in json.loads(v)]
    assert str(ingest.spool_dir).startswith(volume + "/")
    assert ingest.lake_url.startswith(volume + "/")
    (workdir,) = final_stage().values("WORKDIR")
    assert workdir == volume  # relative defaults (e.g. the DuckDB file) land there too
    assert env["HOME"] == volume


def test_volume_is_owned_by_the_app_user() -> None:
    stage = final_stage()
    (volume,) = [p for v in stage.values("VOLUME") for p in json.loads(v)]
    runs = " ".join(stage.values("RUN"))
    assert re.search(rf"install -d -o {APP_UID} -g {APP_UID}\b[^&;]* {re.escape(volume)}\b", runs)


def test_stopsignal_is_sigterm() -> None:
    assert final_stage().values("STOPSIGNAL") == ["SIGTERM"]


def test_final_stage_has_no_build_tools_and_no_source_tree() -> None:
    stages = parse()[1]
    final = stages[-1]
    for run in final.values("RUN"):
        assert not BUILD_TOOLS.search(run), f"build tool in the final stage: {run}"
        assert "pip install" not in run, "the final stage installs nothing: it copies the venv"
    copies = final.values("COPY") + final.values("ADD")
    assert copies, "the final stage copies the venv from the builder"
    for copy in copies:
        # Only artefacts of an earlier stage: never the build context (the source tree).
        words = shlex.split(copy)
        sources = [w for w in words if w.startswith("--from=")]
        assert sources and sources[0].removeprefix("--from=") in {s.name for s in stages[:-1]}
        assert words[-1] == "/opt/venv", copy
    # The builder is the one that has the compiler and builds the wheel.
    builder = stages[0]
    assert any("pip wheel" in r for r in builder.values("RUN"))


def test_dependencies_are_installed_from_the_lock() -> None:
    builder = parse()[1][0]
    copies = builder.values("COPY")
    assert any(shlex.split(c)[0] == "requirements.lock" for c in copies)
    installs = [r for r in builder.values("RUN") if "pip install" in r]
    assert installs
    lock_flag = re.compile(r"(?:-r|-c|--requirement|--constraint)[ =]\S*requirements\.lock\b")
    for run in installs:
        # Every pip install is bound to the lock: nothing unpinned slips into the image.
        for cmd in re.split(r"&&|;", run):
            if "pip install" in cmd:
                assert lock_flag.search(cmd), f"pip install without the lock: {cmd.strip()}"


# ---------------------------------------------------------------------------- .dockerignore


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per line, in the semantics of Docker's patternmatcher: `*` and `?`
    stay within one path segment, `**` spans any number."""
    out = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pat = line.removeprefix("!").strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            elif pat[i] == "[":
                j = pat.index("]", i)
                rx += pat[i : j + 1]
                i = j + 1
            else:
                rx += re.escape(pat[i])
                i += 1
        out.append((negated, re.compile(rx + r"\Z")))
    return out


def _ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, rx in patterns:  # the last matching pattern wins; a parent's match counts
        if any(rx.match(p) for p in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = _dockerignore_patterns()
    builder = parse()[1][0]
    copied: list[str] = []
    for copy in builder.values("COPY"):
        words = [w for w in shlex.split(copy) if not w.startswith("--")]
        copied += words[:-1]
    assert {"requirements.lock", "pyproject.toml", "README.md", "ingest", "loader"} <= set(copied)
    for src in copied:
        path = ROOT / src
        assert path.exists(), f"COPY {src}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files = [f for f in files if "__pycache__" not in f.parts]
        assert files
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            assert not _ignored(rel, patterns), f"{rel} is copied but .dockerignore drops it"
    # The package data (the bundled registry) must reach the wheel.
    assert not _ignored("ingest/data/registry.yaml", patterns)
    for noise in (".venv/bin/python", ".git/HEAD", "var/spool/x", "tests/conftest.py",
                  "ingest/__pycache__/app.cpython-311.pyc", "logship.egg-info/PKG-INFO"):  # fmt: skip
        assert _ignored(noise, patterns), f"{noise} would be sent to the builder"


# ---------------------------------------------------------------------------- requirements.lock


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s;]*)", line)
        assert m, f"requirements.lock: not an exact pin: {raw!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Version(m.group(2))
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_lock_header_says_how_to_regenerate() -> None:
    header = LOCK.read_text().split("\n\n")[0]
    assert header.startswith("#") and "pip freeze" in header and "pip install ." in header


def test_lock_pins_every_runtime_dependency() -> None:
    pins = _lock()
    assert "logship" not in pins, "the lock must not pin logship itself"
    reqs = _runtime_requirements()
    assert len(reqs) >= 10
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject dependency) is not pinned in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_lock_is_closed_under_dependencies() -> None:
    """Every transitive runtime dependency is pinned too (walked through the installed
    distributions' metadata), so the image resolves nothing outside the lock."""
    pins = _lock()
    env = default_environment()
    env.update(python_version="3.11", python_full_version="3.11.0", sys_platform="linux",
               platform_system="Linux", os_name="posix", implementation_name="cpython",
               platform_python_implementation="CPython")  # fmt: skip
    seen: set[str] = set()
    todo = [(r, "") for r in _runtime_requirements()]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} (needed via the runtime dependencies) is not pinned"
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        requires = metadata.requires(req.name) or []
        for extra_name in ["", *sorted(req.extras)]:
            todo += [(Requirement(r), extra_name) for r in requires]
    assert len(seen) >= len(_runtime_requirements())
