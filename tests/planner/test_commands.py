"""The commands say what they mean: every ``vramfit-plan`` command line the README shows parses
(and those that run offline run), and ``plan`` and ``simulate`` name their output file alike."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from planner.cli import EXIT_OK, EXIT_UNPLACEABLE, build_parser, main, plan_settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_commands() -> list[list[str]]:
    """The ``vramfit-plan`` command lines of the README's shell blocks, as argument lists
    (comments dropped, a ``$`` prompt stripped)."""
    commands = []
    for block in FENCE.findall(README.read_text()):
        for line in block.splitlines():
            words = shlex.split(line.removeprefix("$ "), comments=True)
            if words and words[0] == "vramfit-plan":
                commands.append(words[1:])
    return commands


COMMANDS = readme_commands()


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse as ``main`` does: ``plan`` is the default subcommand."""
    if not argv or argv[0] not in ("plan", "simulate", "-h", "--help"):
        argv = ["plan", *argv]
    return build_parser().parse_args(argv)


def test_the_readme_shows_plan_and_simulate_commands() -> None:
    subcommands = {"simulate" if c[:1] == ["simulate"] else "plan" for c in COMMANDS}
    assert subcommands == {"plan", "simulate"}, COMMANDS


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_readme_command_parses(argv: list[str]) -> None:
    args = parse(argv)  # argparse exits 2 on a bad command line
    if args.command == "plan":
        _, errors = plan_settings(args)
        assert errors == []


OFFLINE = [c for c in COMMANDS if "--kubeconfig" not in c]


@pytest.mark.parametrize("argv", OFFLINE, ids=[" ".join(c) for c in OFFLINE])
def test_readme_command_runs(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run from the repository root (the README's paths are relative to it), writing any
    output file under ``tmp_path``; a plan gets a short time limit, and a multi-seed evaluation
    one seed (the full range is ``make bench-seeds``, minutes of CPU)."""
    monkeypatch.chdir(ROOT)
    argv = [str(tmp_path / a) if a.endswith((".html", ".json", ".md")) else a for a in argv]
    if "--seeds" in argv:
        argv[argv.index("--seeds") + 1] = "1"
    if argv[:1] != ["simulate"]:
        argv = [*argv, "--time-limit", "1", "--scenarios", "peak", "-o", "json"]
    rc = main(argv)
    out = capsys.readouterr()
    # The example fleet pins one model to GPUs too small for it: planned, named, exit 3.
    assert rc in (EXIT_OK, EXIT_UNPLACEABLE), out.err


SPELLINGS = [
    pytest.param(sub, flag, id=f"{sub}-{flag}")
    for sub in ("plan", "simulate")
    for flag in ("--output-file", "--out")
]


@pytest.mark.parametrize(("sub", "flag"), SPELLINGS)
def test_output_file_has_one_name_in_both_commands(sub: str, flag: str) -> None:
    args = parse([sub, "-o", "html", flag, "report.html"])
    assert args.output == "html"
    assert args.output_file == Path("report.html")


@pytest.mark.parametrize("sub", ["plan", "simulate"])
def test_help_names_the_output_file_once(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse([sub, "--help"])
    text = capsys.readouterr().out
    assert "--output-file FILE" in text
    assert "--out " not in text and "--out," not in text
