"""The planner's command line given hostile files: a YAML alias bomb, nesting 100,000 deep and a
file larger than any input. Each is one clear error that names the file, and comes fast: the
planner reads with the one document loader, whose bounds are stated in ``documents.limits``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from documents import DEFAULT_MAX_BYTES
from planner.cli import EXIT_INPUT, main


def alias_bomb(path: Path) -> Path:
    """A 'billion laughs' in an InferenceService: nine levels of nine aliases each (9^9 strings
    once expanded) in a field the reader walks, in under 700 bytes."""
    lines = [
        "apiVersion: serving.kserve.io/v1beta1",
        "kind: InferenceService",
        "metadata: {name: x, namespace: ns}",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, 9):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("spec: {predictor: {model: {modelFormat: {name: huggingface}}, x: *a8}}")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    assert len(text) <= 700
    return path


def deep(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    return path


def oversized(path: Path) -> Path:
    with path.open("wb") as f:  # sparse: no disk is written
        f.truncate(DEFAULT_MAX_BYTES + 1)
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "alias-bomb": (alias_bomb, "alias"),
    "nesting-100000-deep": (deep, "nested"),
    "oversized": (oversized, "too large"),
}
WHERE = {
    "manifests": ("--from", "manifests.yaml", ""),
    "catalog": ("--catalog", "pools.yaml", "pool catalog "),
    "traffic": ("--traffic", "traffic.yaml", "traffic file "),
}


@pytest.mark.parametrize("where", WHERE, ids=WHERE)
@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE)
def test_a_hostile_file_is_one_clear_error_naming_it(
    hostile: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the planner hung on a 690-byte alias bomb (1.5 GB after 60 s), died with an
    uncaught RecursionError on deep nesting, and read files of any size."""
    make, detail = HOSTILE[hostile]
    flag, name, what = WHERE[where]
    path = make(tmp_path / name)
    argv = [flag, str(path)]
    if flag != "--from":
        good = tmp_path / "isvc.yaml"
        good.write_text("kind: InferenceService\n", encoding="utf-8")
        argv += ["--from", str(good)]
    started = time.monotonic()
    rc = main([*argv, "-o", "json"])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert rc == EXIT_INPUT and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and f"{what}{path}" in lines[0], lines
    assert detail in lines[0]
    assert elapsed < 5.0
    os.unlink(path)
