"""``vramfit-plan simulate``: arguments and the thin shell around a simulation run.

``add_arguments`` declares the subcommand's options on the parser the planner's CLI gives it,
each default read from ``DEFAULTS`` (an ``Options``, where every default is stated once);
``run`` reads the scenario (a built-in name or a YAML file, optionally on the pools of a plan),
runs every requested policy with the same traffic and seed, and writes the comparison as a
table, JSON or HTML. Bad input is reported on stderr with every problem and exit status 2.
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

PROG = "vramfit-plan simulate"
OUTPUTS = ("table", "json", "html")


@dataclass(frozen=True, slots=True)
class Options:
    """What a ``simulate`` run does when its command line says nothing else.

    ``seed`` and ``duration`` default to the scenario's own (``None``); ``plan`` to the
    scenario's pools; ``output_file`` to stdout.
    """

    scenario: str = "morning-burst"
    policies: tuple[str, ...] = POLICIES
    seed: int | None = None
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
        default=DEFAULTS.scenario,
        help=f"a built-in scenario ({', '.join(BUILTINS)}) or a scenario YAML file "
        "(default: %(default)s)",
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
    try:
        policies = _policies(args.policies)
        scenario = resolve_scenario(args.scenario)
        if args.plan is not None:
            scenario = scenario.with_plan(load_plan(args.plan))
        if args.duration is not None:
            try:
                seconds = duration_seconds(args.duration)
            except ValueError as exc:
                raise FieldError("--duration", str(exc)) from None
            if seconds <= 0:
                raise FieldError("--duration", "must be above zero")
            scenario = scenario.with_duration(seconds)
    except InputError as exc:
        err.print(f"{PROG}: {exc}", markup=False, highlight=False)
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
    if args.output_file is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output_file.write_text(text)
    except OSError as exc:
        err.print(f"{PROG}: cannot write {args.output_file}: {exc.strerror}", markup=False)
        return 2
    err.print(f"wrote {args.output_file}", markup=False, highlight=False)
    return 0
