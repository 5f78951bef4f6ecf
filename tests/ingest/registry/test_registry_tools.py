"""`logship registry check` and `logship registry diff`, through `ingest.cli.main`.

check: each kind of problem is one line naming the event and the field (or the entity), and a
file with several problems gets several lines. diff: the whole breaking/compatible matrix, with
the exit codes CI relies on (0 compatible, 1 breaking, 2 unusable input)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ingest.cli.main import main
from ingest.registry import RegistryError, load_registry, parse_registry
from ingest.registry.diff import diff

# ------------------------------------------------------------------------------ check


def run_check(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    path = tmp_path / "registry.yaml"
    path.write_text(textwrap.dedent(text))
    code = main(["registry", "check", str(path)])
    return code, capsys.readouterr().err.splitlines()


def event_yaml(fields: str, name: str = "robot.moved", extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(fields).strip(), " " * 6)
    return f"version: 1\nentities: [robot_id]\nevents:\n  {name}:\n{extra}    fields:\n{body}\n"


CHECK_CASES = {
    "unknown type": (event_yaml("speed: {type: float}"), ["'robot.moved'", "'speed'", "'float'"]),
    "enum on a non-string": (
        event_yaml("gear: {type: integer, enum: [1, 2]}"), ["'robot.moved'", "'gear'", "enum"]),
    "empty enum": (event_yaml("mode: {type: string, enum: []}"), ["'robot.moved'", "'mode'", "enum"]),
    "duplicate enum value": (
        event_yaml("mode: {type: string, enum: [a, a]}"), ["'robot.moved'", "'mode'", "duplicates"]),
    "YAML boolean in an enum": (
        event_yaml("ok: {type: string, enum: [yes, no]}"), ["'robot.moved'", "'ok'", "quote them", "True, False"]),
    "unknown field key": (
        event_yaml("mode: {type: string, requird: true}"), ["'robot.moved'", "'mode'", "requird"]),
    "invalid field name": (event_yaml("Mode-X: {type: string}"), ["'robot.moved'", "'Mode-X'"]),
    "reserved field name": (
        event_yaml("properties: {type: object}"), ["'robot.moved'", "'properties'", "reserved"]),
    "required and pii drop": (
        event_yaml("phone: {type: string, required: true, pii: drop}"),
        ["'robot.moved'", "'phone'", "pii: drop"]),
    "entity field of the wrong type": (
        event_yaml("robot_id: {type: object}"), ["'robot.moved'", "'robot_id'", "entity"]),
    "description too long": (
        event_yaml(f"x: {{type: string, description: {'y' * 5000}}}"),
        ["'robot.moved'", "'x'", "4096"]),
    "duplicate field": (
        event_yaml("x: {type: string}\nx: {type: integer}"),
        ["'robot.moved'", "'x'", "declared twice", "lines 6, 7"]),
    "duplicate event": (
        "version: 1\nevents:\n  a.b: {}\n  c.d: {}\n  a.b: {}\n",
        ["event 'a.b'", "defined twice", "lines 3, 5"]),
    "invalid event name": ("version: 1\nevents:\n  Robot/Moved: {}\n", ["'Robot/Moved'"]),
    "version beyond the warehouse's INTEGER": (
        "version: 1\nevents:\n  a.b: {version: 3000000000}\n", ["'a.b'", "version", "2147483647"]),
    "events whose generated names collide": (
        "version: 1\nevents:\n  robot.moved: {}\n  robot_moved: {}\n",
        ["'robot_moved'", "ROBOT_MOVED", "RobotMoved", "'robot.moved'"]),
    "entity that is not an identifier": (
        "version: 1\nentities: [robot-id]\nevents:\n  a.b: {}\n", ["entities", "'robot-id'"]),
    "entity listed twice": (
        "version: 1\nentities: [robot_id, robot_id]\nevents:\n  a.b: {}\n",
        ["'robot_id'", "twice"]),
    "reserved entity": (
        "version: 1\nentities: [occurred_at]\nevents:\n  a.b: {}\n", ["'occurred_at'", "reserved"]),
    "not YAML": ("version: 1\nevents: {a.b: {fields: {x: {type: string}}}\n", ["not valid YAML", "line"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_check_names_event_and_field_on_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, needles = CHECK_CASES[case]
    code, lines = run_check(tmp_path, text, capsys)
    assert code == 1
    assert len(lines) == 1, lines  # one problem, one line
    for needle in needles:
        assert needle in lines[0], (needle, lines)


def test_check_reports_every_problem_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
        version: 1
        entities: [delivery_id, robot-id]
        events:
          a.b:
            colour: red
            fields:
              x: {type: float}
              y: {type: string, enum: []}
          c.d:
            fields:
              z: {type: integer, enum: [a]}
              z: {type: string}
          c_d: {}
        """
    code, lines = run_check(tmp_path, text, capsys)
    assert code == 1
    expected = [
        ("event 'a.b'", "colour"),
        ("event 'a.b' field 'x'", "float"),
        ("event 'a.b' field 'y'", "enum"),  # still checked although 'a.b' is broken
        ("event 'c.d' field 'z'", "declared twice"),
        ("entities", "'robot-id'"),
        ("event 'c_d'", "constant C_D and type name CD already belong to event 'c.d'"),
    ]
    assert len(lines) == len(expected), lines
    for where, what in expected:
        assert any(where in line and what in line for line in lines), (where, what, lines)


def test_check_ok_and_the_configured_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "check"]) == 0
    assert "bundled" in capsys.readouterr().out
    reg = tmp_path / "mine.yaml"
    reg.write_text("version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: strin}\n")
    monkeypatch.setenv("LOGSHIP_REGISTRY_PATH", str(reg))
    assert main(["registry", "check"]) == 1
    assert "'a.b'" in capsys.readouterr().err
    reg.write_text("version: 1\nevents:\n  a.b: {}\n")
    assert main(["registry", "check"]) == 0
    assert "mine.yaml: 1 events" in capsys.readouterr().out


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: cannot read" in capsys.readouterr().err


def test_merge_keys_and_anchors_are_not_duplicates() -> None:
    reg = parse_registry(
        "version: 1\nevents:\n  a.b:\n    fields:\n      x: &s {type: string}\n      y: *s\n"
        "      z: {<<: *s, required: true}\n"
    )
    fields = reg.events["a.b"].spec.fields
    assert fields["z"].required and not fields["y"].required


def test_content_hash_ignores_comments_and_key_order() -> None:
    a = parse_registry("version: 1\nevents:\n  a.b: {description: x, owner: o}\n")
    b = parse_registry("# note\nevents:\n  a.b: {owner: o, description: x}  # same\nversion: 1\n")
    c = parse_registry("version: 1\nevents:\n  a.b: {description: y, owner: o}\n")
    assert a.content_hash() == b.content_hash() != c.content_hash()


# ------------------------------------------------------------------------------ diff

BASE = """\
version: 1
entities: [delivery_id, robot_id]
events:
  delivery.created:
    description: A delivery was created.
    owner: dispatch
    fields:
      delivery_id: {type: string, required: true}
      robot_id: {type: string}
      note: {type: string, description: Free text.}
      eta: {type: timestamp}
      rating: {type: integer, required: true}
      phone: {type: string, pii: drop}
      email: {type: string, pii: hash}
      state: {type: string, enum: [new, open, closed]}
  robot.moved:
    extra: allow
    fields:
      robot_id: {type: string, required: true}
"""


def mutate(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


#: name → (NEW registry text, breaking?, text of the one expected change line)
DIFF_CASES = {
    # --- breaking
    "event removed": (mutate("  robot.moved:\n    extra: allow\n    fields:\n      robot_id: {type: string, required: true}\n", ""),
                      True, "event 'robot.moved': removed"),
    "field removed": (mutate("      note: {type: string, description: Free text.}\n", ""),
                      True, "event 'delivery.created' field 'note': removed"),
    "type changed": (mutate("eta: {type: timestamp}", "eta: {type: string}"),
                     True, "field 'eta': type changed from timestamp to string"),
    "field newly required": (mutate("robot_id: {type: string}", "robot_id: {type: string, required: true}"),
                             True, "field 'robot_id': now required"),
    "new required field": (mutate("      eta:", "      site: {type: string, required: true}\n      eta:"),
                           True, "field 'site': added as required"),
    "enum value removed": (mutate("enum: [new, open, closed]", "enum: [new, open]"),
                           True, "field 'state': enum values removed: closed"),
    "enum added to a free field": (mutate("note: {type: string, description: Free text.}",
                                          "note: {type: string, description: Free text., enum: [a]}"),
                                   True, "field 'note': enum added (a)"),
    "entity removed": (mutate("entities: [delivery_id, robot_id]", "entities: [delivery_id]"),
                       True, "entity 'robot_id': removed"),
    "extra allow to ignore": (mutate("    extra: allow\n", ""),
                              True, "event 'robot.moved': extra changed from allow to ignore"),
    "pii hash added": (mutate("note: {type: string, description: Free text.}",
                              "note: {type: string, description: Free text., pii: hash}"),
                       True, "field 'note': pii changed from none to hash"),
    "pii hash removed": (mutate("email: {type: string, pii: hash}", "email: {type: string}"),
                         True, "field 'email': pii changed from hash to none"),
    # --- compatible
    "event added": (BASE + "  robot.parked: {}\n", False, "event 'robot.parked': added"),
    "optional field added": (mutate("      eta:", "      site: {type: string}\n      eta:"),
                             False, "field 'site': added (optional)"),
    "enum value added": (mutate("enum: [new, open, closed]", "enum: [new, open, closed, lost]"),
                         False, "field 'state': enum values added: lost"),
    "enum removed": (mutate(", enum: [new, open, closed]", ""),
                     False, "field 'state': enum removed"),
    "required to optional": (mutate("rating: {type: integer, required: true}", "rating: {type: integer}"),
                             False, "field 'rating': no longer required"),
    "event description changed": (mutate("A delivery was created.", "A delivery was made."),
                                  False, "event 'delivery.created': description changed from 'A delivery was created.' to 'A delivery was made.'"),
    "field description changed": (mutate("Free text.", "Notes."),
                                  False, "field 'note': description changed"),
    "owner changed": (mutate("owner: dispatch", "owner: logistics"),
                      False, "owner changed from 'dispatch' to 'logistics'"),
    "version bumped": (mutate("    owner: dispatch\n", "    owner: dispatch\n    version: 2\n"),
                       False, "version changed from 1 to 2"),
    "entity added": (mutate("entities: [delivery_id, robot_id]", "entities: [delivery_id, robot_id, trip_id]"),
                     False, "entity 'trip_id': added"),
    "extra ignore to allow": (mutate("  delivery.created:\n", "  delivery.created:\n    extra: allow\n"),
                              False, "extra changed from ignore to allow"),
    "pii drop removed": (mutate("phone: {type: string, pii: drop}", "phone: {type: string}"),
                         False, "field 'phone': pii changed from drop to none"),
}  # fmt: skip


def run_diff(
    tmp_path: Path, new: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[str], str]:
    (tmp_path / "old.yaml").write_text(BASE)
    (tmp_path / "new.yaml").write_text(new)
    code = main(
        ["registry", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), *extra]
    )
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


@pytest.mark.parametrize("case", list(DIFF_CASES))
def test_diff_matrix(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, breaking, needle = DIFF_CASES[case]
    code, lines, err = run_diff(tmp_path, new, capsys)
    assert code == (1 if breaking else 0), lines
    assert len(lines) == 1, lines  # exactly the one change
    marker = "breaking: " if breaking else "compatible: "
    assert lines[0].startswith(marker) and needle in lines[0], lines
    assert f"1 changes: {int(breaking)} breaking" in err


def test_diff_lists_every_change_and_any_breaking_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = mutate("enum: [new, open, closed]", "enum: [open, closed, lost]")
    new = mutate("owner: dispatch", "owner: ops", new) + "  robot.parked: {}\n"
    code, lines, err = run_diff(tmp_path, new, capsys)
    assert code == 1
    assert lines == [
        "compatible: event 'delivery.created': owner changed from 'dispatch' to 'ops'",
        "breaking: event 'delivery.created' field 'state': enum values removed: new",
        "compatible: event 'delivery.created' field 'state': enum values added: lost",
        "compatible: event 'robot.parked': added",
    ]
    assert "4 changes: 1 breaking, 3 compatible" in err
    code, out, _ = run_diff(tmp_path, new, capsys, "--json")
    rows = json.loads("\n".join(out))
    assert code == 1 and [r["breaking"] for r in rows] == [False, True, False, False]


def test_diff_no_changes_and_cosmetic_edits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_diff(tmp_path, BASE, capsys)[:2] == (0, [])
    reordered = "# a comment\n" + mutate("entities: [delivery_id, robot_id]", "entities: [delivery_id, robot_id]  # promoted")  # fmt: skip
    code, lines, err = run_diff(tmp_path, reordered, capsys)
    assert (code, lines) == (0, []) and "0 changes" in err


def test_diff_exit_2_when_a_registry_cannot_be_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run_diff(tmp_path, "version: 1\nevents:\n  a.b: {fields: {x: {type: nope}}}\n", capsys)  # fmt: skip
    assert code == 2 and lines == [] and "'a.b'" in err
    assert main(["registry", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "gone.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:  # usage error: argparse's exit code 2
        main(["registry", "diff", str(tmp_path / "old.yaml")])
    assert ei.value.code == 2


def test_diff_of_the_bundled_registry_against_itself_is_empty() -> None:
    reg = load_registry()
    assert diff(reg, reg) == []


def test_broken_registry_still_fails_parse_with_all_problems() -> None:
    with pytest.raises(RegistryError) as ei:
        parse_registry("version: 1\nevents:\n  a.b: {fields: {x: {type: nope}}}\n  c.d: {x: 1}\n")
    assert len(ei.value.problems) == 2
