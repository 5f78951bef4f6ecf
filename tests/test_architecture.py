"""The rules of docs/architecture.md, checked: the import direction between the packages, the
code map against the tree, and that the repository only ever points at itself.

The import rule lives in ``pyproject.toml`` (``[tool.importlinter]``) and is run here by
import-linter's own command line, ``lint-imports``; a second test proves that those contracts
really catch a violation of each kind, on a copy of the packages with bad imports added.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGES = ("ingest", "loader")


# ---------------------------------------------------------------------- the import rule


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` of this virtualenv, run in `cwd` (which it puts first on sys.path, so the
    packages found there are the ones checked)."""
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe) if exe.exists() else shutil.which("lint-imports") or "lint-imports"]
    cmd.append("--no-cache")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_import_contracts_hold() -> None:
    """`loader` imports only ingest's shared contracts, only the command line imports `loader`
    or `loader.ui`, and the shared contracts import only each other."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


#: One bad import per contract, appended to a module of a copy of the tree: (module, import,
#: the edge import-linter must report).
VIOLATIONS = (
    ("loader/discovery.py", "ingest.spool", "loader.discovery -> ingest.spool"),
    ("ingest/fsutil.py", "ingest.uploader", "ingest.fsutil -> ingest.uploader"),
    ("ingest/app.py", "loader.cycle", "ingest.app -> loader.cycle"),
    ("ingest/server.py", "ingest.cli", "ingest.server -> ingest.cli"),
    ("loader/reports.py", "loader.ui", "loader.reports -> loader.ui"),
)


def test_contracts_catch_violations(tmp_path: Path) -> None:
    """The same contracts on a copy of the packages with one bad import per rule: a stage
    imported by the loader, a stage imported by a shared contract, the loader imported by the
    sink, the command line imported by the sink, the UI imported by the rest of the loader.
    Each is reported (so the copy, not the installed tree, was checked) and breaks its contract."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, imported, _ in VIOLATIONS:
        path = tmp_path / module
        path.write_text(path.read_text() + f"\nimport {imported}  # the violation under test\n")

    result = _lint_imports(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    for _, _, edge in VIOLATIONS:
        assert edge in out, f"not reported: {edge}\n{out}"
    assert f"{len(VIOLATIONS)} broken" in out, out


# ---------------------------------------------------------------------- the code map


def _top_level_entries(pkg: str) -> list[str]:
    """Modules (`name.py`) and subpackages (`name/`) directly under a package."""
    entries = []
    for p in sorted((ROOT / pkg).iterdir()):
        if p.is_file() and p.suffix == ".py" and p.name != "__init__.py":
            entries.append(p.name)
        elif p.is_dir() and (p / "__init__.py").exists():
            entries.append(p.name + "/")
    return entries


@pytest.mark.parametrize("pkg", PACKAGES)
def test_code_map_names_every_module(pkg: str) -> None:
    """Every module and subpackage of the tree has its entry in the code map."""
    doc = ARCHITECTURE.read_text()
    section = doc.split("## Code map", 1)[1].split("\n## ", 1)[0]
    missing = [e for e in _top_level_entries(pkg) if f"`{e}`" not in section
               and f"`{pkg}/{e}`" not in section]  # fmt: skip
    assert not missing, f"docs/architecture.md#code-map does not describe {pkg}/: {missing}"


# ---------------------------------------------------------------------- references


def _text_files() -> list[Path]:
    """Every file of the repository a reader may open: tracked, or new and not ignored."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        names = sorted({n for n in out.decode().split("\0") if n})
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".venv-ci", "node_modules", "__pycache__", "var"}
        names = [
            str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
        ]  # fmt: skip
    files = []
    for name in names:
        path = ROOT / name
        if not path.is_file():  # tracked but moved away in this working tree
            continue
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary: fuzz inputs, images
        files.append(path)
    return files


# Built from pieces so that this file does not match itself.
_DESIGN = "DESI" + "GN"
_REFERENCE = re.compile(
    "|".join(
        (
            rf"\b{_DESIGN}\s*(?:\.md\b|\u00a7\s*[\d.]*)",  # the design document outside the repository
            r"\bseeds?\s+0\d\d\b",  # its source documents
            r"\bseeds/0\d\d",
            r"\b[Ii]ssues?\s+#?\d+\b",  # the tracker's numbers
            r"\.\./shared/",
        )
    )
)
_SECTION_SIGN = "\u00a7"


def _references(text: str) -> list[str]:
    matches = list(_REFERENCE.finditer(text))
    found = [m.group(0) for m in matches]
    # A section sign points into some document; only RFCs, which anyone can open, may be cited
    # by section.
    for i, ch in enumerate(text):
        if ch != _SECTION_SIGN or any(m.start() <= i < m.end() for m in matches):
            continue
        if "RFC" not in text[max(0, i - 12) : i]:
            found.append(text[max(0, i - 12) : i + 4])
    return found


def test_no_reference_outside_the_repository() -> None:
    """Code, docs, tests, dashboards and configuration point only at what the repository holds
    (docs/architecture.md, the README, docs/runbook.md), never at a design document, seed or
    tracker issue a reader cannot open."""
    hits = []
    for path in _text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{n}: {r}" for r in _references(line)]
    assert not hits, "references to outside the repository:\n" + "\n".join(hits)


def test_reference_pattern_matches_what_it_must() -> None:
    """The check above is not vacuous: each kind of reference is found, and RFCs are not."""
    for text in (
        _DESIGN + " \u00a73", _DESIGN + ".md", "(" + "issue" + " 7)", "Issue" + " 12",
        "seed" + " 001", "shared/" + "seeds/" + "004_x", "see \u00a7" + "4",
    ):  # fmt: skip
        assert _references(text), text
    for text in ("RFC 8878 \u00a73.1", "tests/fuzz/seeds/extract", "issues with 3 parts"):
        assert not _references(text), text


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
        anchors |= set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', line))
    return anchors


_LINK = re.compile(r"(?<![\w/.:-])((?:\.\./|\./)?[\w][\w./-]*\.md)#([\w-]+)")


def test_pointers_into_the_docs_resolve() -> None:
    """Every pointer to a Markdown file's anchor names an existing file and one of its
    headings, so a pointer that replaced an outside reference leads somewhere."""
    broken = []
    cache: dict[Path, set[str]] = {}
    for path in _text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for target, anchor in _LINK.findall(line):
                candidates = [(path.parent / target).resolve(), (ROOT / target).resolve()]
                doc = next((c for c in candidates if c.is_file() and ROOT in c.parents), None)
                where = f"{path.relative_to(ROOT)}:{n}: {target}#{anchor}"
                if doc is None:
                    broken.append(where + " (no such file)")
                    continue
                if doc not in cache:
                    cache[doc] = _anchors(doc)
                if anchor not in cache[doc]:
                    broken.append(where + " (no such heading)")
    assert not broken, "pointers that lead nowhere:\n" + "\n".join(broken)


#: Repository paths as the docs write them: `ingest/app.py`, `loader/warehouse/`, ...
_PATH = re.compile(
    r"(?<![\w/.-])((?:ingest|loader|tests|bench|examples|docs|helm)/[\w./-]*[\w/])(?![\w<*{-])"
)
DOCS = ("README.md", "docs/architecture.md", "docs/runbook.md", "helm/logship/README.md")


@pytest.mark.parametrize("doc", DOCS)
def test_paths_the_docs_name_exist(doc: str) -> None:
    """A file or folder the docs name is in the tree, so the docs follow a move."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = sorted({p for p in _PATH.findall(text) if not (ROOT / p.rstrip(".")).exists()})
    assert not missing, f"{doc} names paths that do not exist: {missing}"
