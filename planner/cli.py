"""Command-line entry point of vramfit's planner (``vramfit-plan``): parse options, read inputs,
plan, write the report. Subcommands: ``plan`` (the default) and ``simulate`` (the burst
simulator, loaded only when asked for).

Exit codes: 0 planned; 1 bad input (every problem listed): a catalog or the traffic file is
wrong, or no InferenceService or LLMInferenceService could be read and some object could not;
2 bad usage (a ``--cloud`` the catalog has no pool of, too); 3 planned, but some services
cannot be placed (named in the report); 4 a planned placement failed the placement core's fit
check (a bug: the report says which). Objects that
cannot be read while others can are listed (in the report's ``inputs.broken`` and on stderr)
and the others planned: that alone does not change the exit code. Notes on what was read go to
stderr and the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from placement.fields import InputError
from placement.quantity import QuantityError, format_bytes, parse_bytes
from planner.clouds import ANY, CloudPlan, catalog_clouds, cloud_label, cloud_problem, plan_clouds
from planner.frame import frame_all
from planner.inputs.catalog import Catalog
from planner.inputs.kserve import (
    KSERVE_DEFAULT_DEPLOYMENT_MODE,
    KSERVE_NAMESPACE,
    normalize_deployment_mode,
)
from planner.inputs.traffic import DEFAULT_COLD_START_BUDGET_S, parse_duration
from planner.loading import load, stderr_notes, warnings
from planner.packing.solve import SolveOptions
from planner.packing.units import SCENARIOS, ComponentDemand, Scenario
from planner.reports.autoscalers import render_cluster_autoscaler, render_karpenter
from planner.reports.build import build_report
from planner.reports.document import Report, render_json
from planner.reports.html_page import render_html
from planner.reports.markdown import render_markdown
from planner.reports.terminal import print_report
from planner.settings import PlanSettings

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_UNPLACEABLE = 3
EXIT_FIT = 4

FORMATS = ("table", "json", "markdown", "html", "karpenter", "cluster-autoscaler")


DEFAULTS = PlanSettings()


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vramfit-plan plan``; every default is ``PlanSettings``' own."""
    _input_arguments(p.add_argument_group("inputs"))
    _sizing_arguments(p.add_argument_group("sizing"))
    _solver_arguments(p.add_argument_group("solver"))
    out = p.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=None,
        help="table (default on a terminal), json (default otherwise), markdown, html; or "
        "autoscaler configuration from the plan: karpenter (NodePools), cluster-autoscaler "
        "(node groups)",
    )
    out.add_argument(
        "--output-file",
        type=Path,
        metavar="FILE",
        help="write the report to FILE instead of stdout",
    )
    # The shorter spelling, as `simulate` also takes it: works, not advertised.
    out.add_argument("--out", dest="output_file", type=Path, help=argparse.SUPPRESS)


def _input_arguments(src: argparse._ArgumentGroup) -> None:
    src.add_argument(
        "--from",
        dest="paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="read InferenceServices and LLMInferenceServices (and their "
        "LLMInferenceServiceConfigs, LocalModelCaches, the inferenceservice-config ConfigMap) "
        "from YAML/JSON files or folders instead of a cluster",
    )
    src.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    src.add_argument("--context", help="kubeconfig context (default: the current context)")
    ns = src.add_mutually_exclusive_group()
    ns.add_argument("-n", "--namespace", help="read the services of one namespace")
    ns.add_argument(
        "-A", "--all-namespaces", action="store_true", help="read every namespace (default)"
    )
    src.add_argument(
        "--kserve-namespace",
        default=KSERVE_NAMESPACE,
        help="namespace of the inferenceservice-config ConfigMap and of the shared "
        "LLMInferenceServiceConfigs (default %(default)s)",
    )
    src.add_argument(
        "--catalog",
        type=Path,
        help="node-pool catalog YAML (default: the shipped AWS/GCP/Azure catalog)",
    )
    src.add_argument(
        "--cloud",
        metavar="CLOUD",
        default=DEFAULTS.cloud,
        help="plan one provider's pools: aws, gcp, azure (any cloud the catalog names). Default: "
        "plan each provider on its own and compare them, the cheapest first. 'any' mixes the "
        "pools of every provider in one plan, which no real cluster can run (for comparison only)",
    )
    src.add_argument(
        "--keep-existing",
        action="store_true",
        help="keep every pool's existingNodes (plan growth only, never remove a node)",
    )
    src.add_argument(
        "--models", type=Path, help="model catalog YAML (default: the shipped catalog)"
    )
    src.add_argument(
        "--traffic", type=Path, help="traffic profiles and storage tier bandwidths YAML"
    )


def _sizing_arguments(sizing: argparse._ArgumentGroup) -> None:
    headroom = DEFAULTS.units.headroom
    sizing.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=headroom.gpu_memory_utilization,
        help="share of each GPU the engine may use, as vLLM's flag (default %(default)s)",
    )
    sizing.add_argument(
        "--kv-cache-fraction",
        type=float,
        default=headroom.kv_cache_fraction,
        help="KV cache to keep free per GPU, as a fraction of the weights on it "
        "(default %(default)s)",
    )
    sizing.add_argument(
        "--min-kv-cache",
        default=headroom.min_kv_cache_bytes,
        help=f"least KV cache per GPU (default {format_bytes(headroom.min_kv_cache_bytes)})",
    )
    sizing.add_argument(
        "--runtime-overhead",
        default=headroom.runtime_overhead_bytes,
        help="CUDA context, activations and graphs per GPU "
        f"(default {format_bytes(headroom.runtime_overhead_bytes)})",
    )
    sizing.add_argument(
        "--deployment-mode",
        default=DEFAULTS.deployment_mode,
        help="default KServe deployment mode when no inferenceservice-config is read "
        "(Knative/Serverless or Standard/RawDeployment; default "
        f"{KSERVE_DEFAULT_DEPLOYMENT_MODE}, as KServe ships)",
    )
    sizing.add_argument(
        "--allow-pcie-tensor-parallel",
        action="store_true",
        default=DEFAULTS.units.allow_pcie_tensor_parallel,
        help="let tensor-parallel replicas use GPUs without NVLink",
    )
    sizing.add_argument(
        "--cold-start-budget",
        default=DEFAULTS.cold_start_budget_s,
        help="default cold-start budget (default: the traffic file's, else "
        f"{DEFAULT_COLD_START_BUDGET_S:g}s)",
    )


def _solver_arguments(solve: argparse._ArgumentGroup) -> None:
    options = DEFAULTS.solve
    solve.add_argument(
        "--scenario",
        default=DEFAULTS.primary.value,
        choices=[s.value for s in SCENARIOS],
        help="scenario the top-level report fields describe (default %(default)s)",
    )
    solve.add_argument(
        "--scenarios",
        default=",".join(s.value for s in DEFAULTS.scenarios),
        help="comma-separated scenarios to plan (default %(default)s)",
    )
    solve.add_argument(
        "--time-limit",
        type=float,
        default=options.time_limit_s,
        help="seconds per scenario and cloud (default %(default)s)",
    )
    solve.add_argument(
        "--seed", type=int, default=options.seed, help="CP-SAT random seed (default %(default)s)"
    )
    solve.add_argument(
        "--workers",
        type=int,
        default=options.workers,
        help="CP-SAT search workers (default %(default)s)",
    )
    solve.add_argument(
        "--relative-gap",
        type=float,
        default=options.relative_gap,
        help="stop once the plan is within this share of the bound (default %(default)s)",
    )
    solve.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        default=options.deterministic,
        help="stop on wall-clock time only (faster, results may vary between runs)",
    )


def problem_lines(exc: InputError) -> list[str]:
    """One line per problem of ``exc``, each naming its source when the error has one."""
    return [f"{exc.source}: {p}" if exc.source else str(p) for p in exc.problems]


def plan_settings(args: argparse.Namespace) -> tuple[PlanSettings, list[str]]:
    """The settings the options give, and every problem with them, in the order of the
    options."""
    headroom = replace(
        DEFAULTS.units.headroom,
        gpu_memory_utilization=args.gpu_memory_utilization,
        kv_cache_fraction=args.kv_cache_fraction,
    )
    errors = headroom.errors()
    try:
        headroom = replace(
            headroom,
            min_kv_cache_bytes=parse_bytes(args.min_kv_cache, "--min-kv-cache"),
            runtime_overhead_bytes=parse_bytes(args.runtime_overhead, "--runtime-overhead"),
        )
    except QuantityError as exc:
        errors.append(str(exc))
    settings = PlanSettings(
        units=replace(
            DEFAULTS.units,
            headroom=headroom,
            allow_pcie_tensor_parallel=args.allow_pcie_tensor_parallel,
        ),
        deployment_mode=_deployment_mode(args.deployment_mode, errors),
        cold_start_budget_s=_cold_start_budget(args.cold_start_budget, errors),
        scenarios=_scenarios(args.scenarios, errors),
        primary=Scenario(args.scenario),
        solve=SolveOptions(
            time_limit_s=args.time_limit,
            seed=args.seed,
            workers=args.workers,
            deterministic=args.deterministic,
            relative_gap=args.relative_gap,
        ),
        cloud=args.cloud,
    )
    # The settings' own checks, but for the headroom's, listed first above.
    errors.extend(e for e in settings.errors() if e not in errors)
    return settings, errors


def _deployment_mode(value: str | None, errors: list[str]) -> str | None:
    if value is None:
        return None
    mode = normalize_deployment_mode(value)
    if mode is None:
        errors.append(
            f"--deployment-mode {value!r} is not Knative, Serverless, Standard or RawDeployment"
        )
    return mode


def _cold_start_budget(value: str | None, errors: list[str]) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, "--cold-start-budget")
    except ValueError as exc:
        errors.append(str(exc))
        return None


def _scenarios(value: str, errors: list[str]) -> tuple[Scenario, ...]:
    scenarios: list[Scenario] = []
    for word in value.split(","):
        try:
            scenarios.append(Scenario(word.strip()))
        except ValueError:
            errors.append(
                f"--scenarios: unknown scenario {word.strip()!r}; known: "
                f"{', '.join(s.value for s in SCENARIOS)}"
            )
    return tuple(scenarios)


def run_plan(
    args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Plan and write the report; returns the exit code."""
    out = stdout or sys.stdout
    err_stream = stderr or sys.stderr

    def error(message: str) -> None:
        err_stream.write(f"error: {message}\n")

    settings, errors = plan_settings(args)
    if errors:
        for e in errors:
            error(e)
        return EXIT_USAGE
    try:
        loaded = load(args, settings)
    except InputError as exc:
        for line in problem_lines(exc):
            error(line)
        return EXIT_INPUT
    if problem := cloud_problem(settings.cloud, loaded.catalog):
        error(problem)
        return EXIT_USAGE
    for line in stderr_notes(loaded.inputs, loaded.demands):
        err_stream.write(f"note: {line}\n")
    for p in loaded.inputs.problems():
        error(f"{p} (not planned)")
    fmt = args.output or ("table" if out.isatty() and args.output_file is None else "json")
    clouds = _solve(
        loaded.demands,
        catalog=loaded.catalog,
        settings=settings,
        console=Console(file=err_stream, highlight=False),
        show=fmt == "table",
    )
    frames = frame_all(clouds[0].plan, loaded.traffic, loaded.inputs.caches)
    notes = warnings(loaded.inputs, loaded.demands)
    if clouds[0].cloud == ANY:
        notes.append("--cloud any: this plan mixes clouds; no single cluster can run it")
    report = build_report(
        clouds, frames, loaded.inputs, settings.primary, notes, catalog=loaded.catalog
    )
    _write(report, fmt, args.output_file, out, loaded.catalog)
    fit_errors = [
        f"{cloud_label(c.cloud)}: {e}" if len(clouds) > 1 else e
        for c in clouds
        for sp in c.plan.scenarios.values()
        for e in sp.fit_errors
    ]
    if fit_errors:
        for e in fit_errors:
            error(f"placement check failed: {e}")
        return EXIT_FIT
    if report["unplaceable"]:
        names = sorted({u["inference_service"] for u in report["unplaceable"]})
        error(f"cannot place {', '.join(names)} (see the report)")
        return EXIT_UNPLACEABLE
    return EXIT_OK


def _write(report: Report, fmt: str, path: Path | None, out: TextIO, catalog: Catalog) -> None:
    """Write the report in ``fmt`` to ``path``, else to ``out``."""
    if fmt == "table":
        if path is None:
            print_report(report, Console(file=out, width=160))
        else:
            with path.open("w") as f:
                print_report(report, Console(file=f, width=160))
        return
    if fmt in ("karpenter", "cluster-autoscaler"):
        render = render_karpenter if fmt == "karpenter" else render_cluster_autoscaler
        text = render(report, catalog)
    else:
        text = {"json": render_json, "markdown": render_markdown, "html": render_html}[fmt](report)
    if path is not None:
        path.write_text(text)
    else:
        out.write(text)


def _solve(
    demands: tuple[ComponentDemand, ...],
    *,
    catalog: Catalog,
    settings: PlanSettings,
    console: Console,
    show: bool,
) -> tuple[CloudPlan, ...]:
    """The plan of each cloud asked for, ranked (``plan_clouds``), with a spinner per cloud
    and scenario on a terminal."""
    scenarios = settings.scenarios

    def solve(progress: Callable[[str, Scenario, str], None] | None) -> tuple[CloudPlan, ...]:
        return plan_clouds(
            demands,
            catalog,
            settings.solve,
            scenarios,
            primary=settings.primary,
            cloud=settings.cloud,
            progress=progress,
        )

    if not (show and console.is_terminal):
        return solve(None)
    clouds = catalog_clouds(catalog) if settings.cloud is None else (settings.cloud,)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks = {
            (c, sc): progress.add_task(f"{cloud_label(c)} {sc.value}: waiting", total=None)
            for c in clouds
            for sc in scenarios
        }

        def update(c: str, sc: Scenario, msg: str) -> None:
            progress.update(tasks[(c, sc)], description=f"{cloud_label(c)} {sc.value}: {msg}")

        return solve(update)


def _simulator_cli() -> Any:
    """The simulator's CLI module, imported only for ``simulate`` (it pulls in simpy)."""
    import simulator.cli  # noqa: PLC0415 - lazy: a plan run never loads the simulator

    return simulator.cli


def build_parser(
    simulator: Callable[[], Any] | None = _simulator_cli,
) -> argparse.ArgumentParser:
    """The argument parser. ``simulator`` loads the simulator's CLI module for its options;
    ``None`` (a plan run, which never parses ``simulate``) leaves the simulator unloaded."""
    parser = argparse.ArgumentParser(
        prog="vramfit-plan",
        description="Size GPU node pools across every InferenceService and LLMInferenceService, "
        "price scale-to-zero, and simulate scale-up bursts.",
        epilog="Exit codes: 0 planned (objects that cannot be read are listed, the rest planned); "
        "1 bad input (nothing could be read, or a bad catalog or traffic file); 2 bad usage; "
        "3 some services cannot be placed; 4 a placement failed the fit check.",
    )
    sub = parser.add_subparsers(dest="command")
    add_plan_arguments(sub.add_parser("plan", help="plan node pools (default)"))
    sim = sub.add_parser("simulate", help="replay a scale-up burst per placement policy")
    if simulator is not None:
        module = simulator()
        module.add_arguments(sim)
        sim.set_defaults(simulator_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vramfit-plan``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in ("plan", "simulate", "-h", "--help"):
        args_list.insert(0, "plan")
    wants_sim = args_list[0] == "simulate"
    parser = build_parser(_simulator_cli if wants_sim else None)
    args = parser.parse_args(args_list)
    if args.command == "simulate":
        return int(args.simulator_run(args))
    return run_plan(args)
