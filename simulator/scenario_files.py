"""Scenario files: the built-in scenarios shipped beside the simulator, and scenario YAML files.

The thin I/O shell around ``scenario_reader``: the one document loader (``documents``) reads and
decodes the file, or the text of a built-in from the ``simulator.scenarios`` package data, and
the pure reader validates it. A file that cannot be read is a ``DocumentError``, a document with
mistakes an ``InputError`` listing each; both name the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from documents import DocumentError, load_document, parse_document
from placement.fields import InputError, Problem
from simulator.scenario import Scenario
from simulator.scenario_reader import parse_scenario

BUILTINS = (
    "morning-burst",
    "steady-diurnal",
    "cache-warm-fleet",
    "fleet-day",
    "multi-node-burst",
    "priority-preemption",
)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario YAML file; raises ``InputError`` naming the file and every problem."""
    return parse_scenario(load_document(path, syntax="yaml"), str(path))


def scenario_from_text(text: str, source: str) -> Scenario:
    """Parse scenario YAML text; ``source`` names it in errors."""
    return parse_scenario(parse_document(text, source, syntax="yaml"), source)


def builtin_scenario(name: str) -> Scenario:
    """One of the scenarios shipped with vramfit (``BUILTINS``)."""
    if name not in BUILTINS:
        raise InputError(
            name, [Problem("", f"no built-in scenario {name!r}; built-in: {', '.join(BUILTINS)}")]
        )
    text = resources.files("simulator.scenarios").joinpath(f"{name}.yaml").read_text()
    return scenario_from_text(text, f"built-in scenario {name}")


def resolve_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in BUILTINS:
        return builtin_scenario(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and not name_or_path.endswith((".yaml", ".yml")):
        raise DocumentError(
            name_or_path, f"neither a built-in scenario ({', '.join(BUILTINS)}) nor a file"
        )
    return load_scenario(path)
