"""``vramfit-plan simulate``: arguments and the thin shell around a simulation run.

``add_arguments`` declares the subcommand's options on the parser the planner's CLI gives it,
each default read from ``DEFAULTS`` (an ``Options``, where every default is stated once);
``run`` reads the scenario (a built-in name or a YAML file, optionally on the pools of a plan),
runs every requested policy with the same traffic and seed, and writes the comparison as a
table, JSON or HTML. With ``--seeds`` it runs every built-in scenario (or the one named) over
each seed instead, on up to ``--jobs`` processes, and reports per scenario and policy the mean
and the worst seed of each measure, and the targets the default profile misses
(``simulator.seeds``), as a table, JSON or Markdown. Bad input is reported on stderr with every problem and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from placement.fields import FieldError, InputError
from placement.quantity import duration_seconds
from simulator.catalog import BUILTIN_TYPES, load_plan
from simulator.engine import POLICIES, simulate
from simulator.metrics import summarize
from simulator.render import console_for, print_table, to_html, to_json
from simulator.scenario_files import BUILTINS, builtin_scenario, resolve_scenario
from simulator.seeds import misses, parse_seeds, sweep, to_markdown
from simulator.seeds import to_json as seeds_json

PROG = "vramfit-plan simulate"
OUTPUTS = ("table", "json", "html", "markdown")


@dataclass(frozen=True, slots=True)
class Options:
    """What a ``simulate`` run does when its command line says nothing else.

    ``seed`` and ``duration`` default to the scenario's own (``None``); ``plan`` to the
    scenario's pools; ``output_file`` to stdout.
    """

    scenario: str = "morning-burst"
    policies: tuple[str, ...] = POLICIES
    seed: int | None = None
    seeds: str | None = None
    jobs: int = 1
    duration: str | None = None
    plan: Path | None = None
    output: str = OUTPUTS[0]
    output_file: Path | None = None


DEFAULTS = Options()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``simulate`` options on ``parser``."""
    parser.description = (
        "Replay scale-ups on a simulated GPU cluster and compare placement policies with the "
        "same traffic and seed."
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default=None,
        help=f"a built-in scenario ({', '.join(BUILTINS)}) or a scenario YAML file "
        f"(default: {DEFAULTS.scenario}; with --seeds, every built-in scenario)",
    )
    parser.add_argument(
        "-p",
        "--policy",
        dest="policies",
        action="append",
        metavar="NAME[,NAME]",
        help=f"policies to compare, repeatable or comma-separated (default: all of "
        f"{', '.join(DEFAULTS.policies)})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="random seed (default: the scenario's)"
    )
    parser.add_argument(
        "--seeds",
        default=DEFAULTS.seeds,
        metavar="RANGE",
        help="run over many seeds (1-20, or 1,4,7-9) and report the mean and the worst seed "
        "of each measure, and the targets missed (output: table, json or markdown)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULTS.jobs,
        help="with --seeds: processes to run the seeds on (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        default=DEFAULTS.duration,
        help="simulate this long instead of the scenario's duration (e.g. 2h)",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        default=DEFAULTS.plan,
        help="use the node pools of a vramfit-plan plan JSON instead of the scenario's",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default=DEFAULTS.output,
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "--output-file",
        type=Path,
        metavar="FILE",
        default=DEFAULTS.output_file,
        help="write the output to FILE instead of stdout",
    )
    # The earlier spelling: works, not advertised (`plan` takes it too).
    parser.add_argument("--out", dest="output_file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--list",
        dest="list_scenarios",
        action="store_true",
        help="list the built-in scenarios and node types, then exit",
    )


def _policies(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return DEFAULTS.policies
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise FieldError(
            "--policy", f"unknown policy {', '.join(unknown)}; known: {', '.join(POLICIES)}"
        )
    return tuple(dict.fromkeys(names))


def _list(console: Console) -> int:
    console.print("[bold]Built-in scenarios[/bold]")
    for name in BUILTINS:
        s = builtin_scenario(name)
        console.print(f"  {name:18s} {s.description}")
    console.print("[bold]Built-in node types[/bold] (pools[].type)")
    for t in BUILTIN_TYPES.values():
        console.print(
            f"  {t.name:14s} {t.shape.gpus}x {t.shape.product}, {t.shape.vram_per_gpu / 1024**3:.0f} GiB, "
            f"${t.price_per_hour:.2f}/h"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the simulation the arguments ask for; the exit status."""
    console = console_for()
    err = Console(stderr=True)
    if args.list_scenarios:
        return _list(console)
    if args.seeds is not None:
        return _run_seeds(args, console, err)
    try:
        policies = _policies(args.policies)
        scenario = resolve_scenario(args.scenario or DEFAULTS.scenario)
        if args.plan is not None:
            scenario = scenario.with_plan(load_plan(args.plan))
        if args.duration is not None:
            scenario = scenario.with_duration(_duration(args.duration))
    except InputError as exc:
        err.print(f"{PROG}: {exc}", markup=False, highlight=False)
        return 2
    if args.output == "markdown":
        err.print(f"{PROG}: -o markdown is for --seeds", markup=False, highlight=False)
        return 2
    seed = scenario.seed if args.seed is None else args.seed
    rows = [summarize(r) for r in simulate(scenario, policies, seed=seed)]
    if args.output == "json":
        text = to_json(scenario, seed, rows)
    elif args.output == "html":
        text = to_html(scenario, seed, rows)
    else:
        if args.output_file is None:
            print_table(console, scenario, seed, rows)
            return 0
        capture = Console(record=True, width=140, file=io.StringIO())
        print_table(capture, scenario, seed, rows)
        text = capture.export_text()
    return _write(args.output_file, text, err)


def _run_seeds(args: argparse.Namespace, console: Console, err: Console) -> int:
    """``--seeds``: every scenario (or the one named) over each seed, each policy."""
    try:
        policies = _policies(args.policies)
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as exc:
            raise FieldError("--seeds", str(exc)) from None
        if args.jobs < 1:
            raise FieldError("--jobs", "must be at least 1")
        if args.output == "html":
            raise FieldError("--output", "html is for one seed; use table, json or markdown")
        names = [args.scenario] if args.scenario else list(BUILTINS)
        scenarios = [resolve_scenario(n) for n in names]
        if args.duration is not None:
            seconds = _duration(args.duration)
            scenarios = [s.with_duration(seconds) for s in scenarios]
    except InputError as exc:
        err.print(f"{PROG}: {exc}", markup=False, highlight=False)
        return 2
    rows = sweep(scenarios, policies, seeds, jobs=args.jobs)
    missed = misses(rows)
    if args.output == "json":
        text = seeds_json(rows)
    else:
        text = to_markdown(rows)
        if missed:
            text += "\ntargets missed by vramfit:\n" + "".join(f"- {m}\n" for m in missed)
        elif any(r.policy == "vramfit" for r in rows):
            text += "\nvramfit meets every target.\n"
        if args.output == "table" and args.output_file is None:
            console.print(text, markup=False, highlight=False)
            return 0
    return _write(args.output_file, text, err)


def _duration(text: str) -> float:
    """``--duration`` in seconds; a ``FieldError`` when it is not a positive duration."""
    try:
        seconds = duration_seconds(text)
    except ValueError as exc:
        raise FieldError("--duration", str(exc)) from None
    if seconds <= 0:
        raise FieldError("--duration", "must be above zero")
    return seconds


def _write(path: Path | None, text: str, err: Console) -> int:
    """Write ``text`` to ``path`` (stdout when ``None``); the exit status."""
    if path is None:
        sys.stdout.write(text)
        return 0
    try:
        path.write_text(text)
    except OSError as exc:
        err.print(f"{PROG}: cannot write {path}: {exc.strerror}", markup=False)
        return 2
    err.print(f"wrote {path}", markup=False, highlight=False)
    return 0
