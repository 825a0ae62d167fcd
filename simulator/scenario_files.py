"""Scenario files: the built-in scenarios shipped beside the simulator, and scenario YAML files.

The thin I/O shell around ``scenario_reader``: it reads the text (a file, or a built-in from
the ``simulator.scenarios`` package data), parses the YAML and hands the document to the pure
reader. Every failure is a ``ScenarioError`` naming the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from simulator.fields import ScenarioError
from simulator.scenario import Scenario
from simulator.scenario_reader import parse_scenario

BUILTINS = ("morning-burst", "steady-diurnal", "cache-warm-fleet", "fleet-day")


def load_scenario(path: Path) -> Scenario:
    """Read a scenario YAML file; raises ``ScenarioError`` naming the file and every problem."""
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(source, ["scenario file not found"]) from None
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read the scenario ({exc.strerror})"]) from None
    return scenario_from_text(text, source)


def scenario_from_text(text: str, source: str) -> Scenario:
    """Parse scenario YAML text; ``source`` names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [f"not valid YAML ({exc})"]) from None
    return parse_scenario(raw, source)


def builtin_scenario(name: str) -> Scenario:
    """One of the scenarios shipped with vramfit (``BUILTINS``)."""
    if name not in BUILTINS:
        raise ScenarioError(
            name, [f"no built-in scenario {name!r}; built-in: {', '.join(BUILTINS)}"]
        )
    text = resources.files("simulator.scenarios").joinpath(f"{name}.yaml").read_text()
    return scenario_from_text(text, f"built-in scenario {name}")


def resolve_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in BUILTINS:
        return builtin_scenario(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and not name_or_path.endswith((".yaml", ".yml")):
        raise ScenarioError(
            name_or_path,
            [f"neither a built-in scenario ({', '.join(BUILTINS)}) nor a file"],
        )
    return load_scenario(path)
