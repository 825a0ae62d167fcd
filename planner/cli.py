"""Command-line entry point of vramfit's planner (``vramfit-plan``): parse options, read inputs,
plan, write the report. Subcommands: ``plan`` (the default) and ``simulate`` (the burst
simulator, loaded only when asked for).

Exit codes: 0 planned; 1 bad input (every problem listed); 2 bad usage; 3 planned, but some
InferenceServices cannot be placed (named in the report); 4 a planned placement failed the
placement core's fit check (a bug: the report says which).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from placement.quantity import QuantityError, parse_bytes
from planner.diagnostics import InputError, Problem
from planner.frame import frame_all
from planner.inputs.catalog import keep_existing, load_catalog
from planner.inputs.kserve import normalize_deployment_mode
from planner.inputs.models import Headroom, load_model_catalog
from planner.inputs.sources import Inputs, kube_client, read_cluster, read_files
from planner.inputs.traffic import load_traffic, parse_duration
from planner.packing.solve import SolveOptions
from planner.packing.units import SCENARIOS, DemandSettings, Scenario, component_demand
from planner.plan import plan_all
from planner.reports.build import build_report
from planner.reports.document import render_json
from planner.reports.html_page import render_html
from planner.reports.markdown import render_markdown
from planner.reports.terminal import print_report

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_UNPLACEABLE = 3
EXIT_FIT = 4

FORMATS = ("table", "json", "markdown", "html")


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vramfit-plan plan``."""
    src = p.add_argument_group("inputs")
    src.add_argument(
        "--from",
        dest="paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="read InferenceServices (and LocalModelCaches, the inferenceservice-config "
        "ConfigMap) from YAML/JSON files or folders instead of a cluster",
    )
    src.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    src.add_argument("--context", help="kubeconfig context (default: the current context)")
    ns = src.add_mutually_exclusive_group()
    ns.add_argument("-n", "--namespace", help="read InferenceServices of one namespace")
    ns.add_argument(
        "-A", "--all-namespaces", action="store_true", help="read every namespace (default)"
    )
    src.add_argument(
        "--kserve-namespace",
        default="kserve",
        help="namespace of the inferenceservice-config ConfigMap",
    )
    src.add_argument(
        "--catalog",
        type=Path,
        help="node-pool catalog YAML (default: the shipped AWS/GCP/Azure catalog)",
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
    sizing = p.add_argument_group("sizing")
    sizing.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=0.90,
        help="share of each GPU the engine may use, as vLLM's flag (default 0.90)",
    )
    sizing.add_argument(
        "--kv-cache-fraction",
        type=float,
        default=0.10,
        help="KV cache to keep free per GPU, as a fraction of the weights on it (default 0.10)",
    )
    sizing.add_argument(
        "--min-kv-cache", default="1Gi", help="least KV cache per GPU (default 1Gi)"
    )
    sizing.add_argument(
        "--runtime-overhead",
        default="2Gi",
        help="CUDA context, activations and graphs per GPU (default 2Gi)",
    )
    sizing.add_argument(
        "--deployment-mode",
        default=None,
        help="default KServe deployment mode when no inferenceservice-config is read "
        "(Knative/Serverless or Standard/RawDeployment; default Knative, as KServe ships)",
    )
    sizing.add_argument(
        "--allow-pcie-tensor-parallel",
        action="store_true",
        help="let tensor-parallel replicas use GPUs without NVLink",
    )
    sizing.add_argument(
        "--cold-start-budget", default=None, help="default cold-start budget (default 60s)"
    )
    solve = p.add_argument_group("solver")
    solve.add_argument(
        "--scenario",
        default=Scenario.PEAK.value,
        choices=[s.value for s in SCENARIOS],
        help="scenario the top-level report fields describe (default peak)",
    )
    solve.add_argument(
        "--scenarios",
        default=",".join(s.value for s in SCENARIOS),
        help="comma-separated scenarios to plan (default all)",
    )
    solve.add_argument(
        "--time-limit", type=float, default=10.0, help="seconds per scenario (default 10)"
    )
    solve.add_argument("--seed", type=int, default=0, help="CP-SAT random seed (default 0)")
    solve.add_argument("--workers", type=int, default=1, help="CP-SAT search workers (default 1)")
    solve.add_argument(
        "--relative-gap",
        type=float,
        default=0.005,
        help="stop once the plan is within this share of the bound (default 0.005)",
    )
    solve.add_argument(
        "--no-deterministic",
        action="store_true",
        help="stop on wall-clock time only (faster, results may vary between runs)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=None,
        help="table (default on a terminal), json (default otherwise), markdown, html",
    )
    out.add_argument("--output-file", type=Path, help="write the report here instead of stdout")


def _settings(args: argparse.Namespace) -> tuple[list[str], Any]:
    errors: list[str] = []
    headroom = Headroom()
    if not 0 < args.gpu_memory_utilization <= 1:
        errors.append(
            f"--gpu-memory-utilization must be in (0, 1], got {args.gpu_memory_utilization}"
        )
    if not 0 <= args.kv_cache_fraction <= 10:
        errors.append(f"--kv-cache-fraction must be in [0, 10], got {args.kv_cache_fraction}")
    try:
        min_kv = parse_bytes(args.min_kv_cache, "--min-kv-cache")
        overhead = parse_bytes(args.runtime_overhead, "--runtime-overhead")
        headroom = Headroom(args.gpu_memory_utilization, args.kv_cache_fraction, min_kv, overhead)
    except QuantityError as exc:
        errors.append(str(exc))
    mode = None
    if args.deployment_mode is not None:
        mode = normalize_deployment_mode(args.deployment_mode)
        if mode is None:
            errors.append(
                f"--deployment-mode {args.deployment_mode!r} is not Knative, Serverless, Standard or RawDeployment"
            )
    budget = None
    if args.cold_start_budget is not None:
        try:
            budget = parse_duration(args.cold_start_budget, "--cold-start-budget")
        except ValueError as exc:
            errors.append(str(exc))
    scenarios: list[Scenario] = []
    for word in args.scenarios.split(","):
        try:
            scenarios.append(Scenario(word.strip()))
        except ValueError:
            errors.append(
                f"--scenarios: unknown scenario {word.strip()!r}; known: {', '.join(s.value for s in SCENARIOS)}"
            )
    primary = Scenario(args.scenario)
    if scenarios and primary not in scenarios:
        errors.append(f"--scenario {primary.value} is not among --scenarios")
    options = SolveOptions(
        time_limit_s=args.time_limit,
        seed=args.seed,
        workers=args.workers,
        deterministic=not args.no_deterministic,
        relative_gap=args.relative_gap,
    )
    errors.extend(options.errors())
    return errors, (headroom, mode, budget, tuple(scenarios), primary, options)


def run_plan(args: argparse.Namespace, stdout: Any = None, stderr: Any = None) -> int:
    """Plan and write the report; returns the exit code."""
    out = stdout or sys.stdout
    err_stream = stderr or sys.stderr
    err_console = Console(file=err_stream, highlight=False)

    def error(message: str) -> None:
        err_stream.write(f"error: {message}\n")

    errors, parsed = _settings(args)
    if errors:
        for e in errors:
            error(f"{e}")
        return EXIT_USAGE
    headroom, mode, budget, scenarios, primary, options = parsed
    try:
        catalog = load_catalog(args.catalog)
        if args.keep_existing:
            catalog = keep_existing(catalog)
        models = load_model_catalog(args.models)
        traffic = load_traffic(args.traffic)
        if budget is not None:
            traffic = replace(traffic, default_budget_s=budget)
        inputs = _read_inputs(args)
        settings = DemandSettings(
            headroom=headroom,
            default_deployment_mode=mode
            or (inputs.config.default_deployment_mode if inputs.config else "Knative"),
            allow_pcie_tensor_parallel=args.allow_pcie_tensor_parallel,
        )
        problems: list[Problem] = []
        demands = []
        for isvc in inputs.services:
            for comp in isvc.components:
                d = component_demand(
                    isvc,
                    comp,
                    catalog=catalog,
                    models=models,
                    traffic=traffic,
                    settings=settings,
                    problems=problems,
                )
                if d is not None:
                    demands.append(d)
        if problems:
            raise InputError(problems)
    except InputError as exc:
        for p in exc.problems:
            error(f"{p}")
        return EXIT_INPUT
    fmt = args.output or ("table" if out.isatty() and args.output_file is None else "json")
    plan = _solve(
        tuple(demands),
        catalog=catalog,
        options=options,
        scenarios=scenarios,
        console=err_console,
        show=fmt == "table",
    )
    frames = frame_all(plan, traffic, inputs.caches)
    warnings = _warnings(inputs, demands)
    report = build_report(plan, frames, inputs, primary, warnings)
    if fmt == "table":
        if args.output_file is None:
            print_report(report, Console(file=out, width=160))
        else:
            with args.output_file.open("w") as f:
                print_report(report, Console(file=f, width=160))
    else:
        text = {"json": render_json, "markdown": render_markdown, "html": render_html}[fmt](report)
        if args.output_file is not None:
            args.output_file.write_text(text)
        else:
            out.write(text)
    fit_errors = [e for sp in plan.scenarios.values() for e in sp.fit_errors]
    if fit_errors:
        for e in fit_errors:
            error(f"placement check failed: {e}")
        return EXIT_FIT
    if report["unplaceable"]:
        names = sorted({u["inference_service"] for u in report["unplaceable"]})
        error(f"cannot place {', '.join(names)} (see the report)")
        return EXIT_UNPLACEABLE
    return EXIT_OK


def _read_inputs(args: argparse.Namespace) -> Inputs:
    if args.paths:
        return read_files(args.paths)
    api = kube_client(args.kubeconfig, args.context)
    try:
        return read_cluster(api, args.namespace, args.kserve_namespace)
    finally:
        api.close()


def _solve(
    demands: Any,
    *,
    catalog: Any,
    options: SolveOptions,
    scenarios: Any,
    console: Console,
    show: bool,
) -> Any:
    if not (show and console.is_terminal):
        return plan_all(demands, catalog, options, scenarios)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks = {sc: progress.add_task(f"{sc.value}: waiting", total=None) for sc in scenarios}

        def update(sc: Scenario, msg: str) -> None:
            progress.update(tasks[sc], description=f"{sc.value}: {msg}")

        return plan_all(demands, catalog, options, scenarios, update)


def _warnings(inputs: Inputs, demands: list[Any]) -> list[str]:
    out: list[str] = []
    for d in demands:
        out.extend(f"{d.service} {d.component}: {n}" for n in d.notes)
    if inputs.skipped:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(inputs.skipped.items()))
        out.append(f"ignored objects that are not InferenceServices: {kinds}")
    cpu_only = [s.key for s in inputs.services if not any(d.service == s.key for d in demands)]
    if cpu_only:
        out.append(
            f"{len(cpu_only)} InferenceServices ask for no NVIDIA GPU and are not planned: {', '.join(cpu_only)}"
        )
    return list(dict.fromkeys(out))


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
        description="Size GPU node pools across every InferenceService, price scale-to-zero, and "
        "simulate scale-up bursts.",
        epilog="Exit codes: 0 planned; 1 bad input; 2 bad usage; 3 some InferenceServices cannot be "
        "placed; 4 a placement failed the fit check.",
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
