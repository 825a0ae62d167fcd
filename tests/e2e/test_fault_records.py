"""The fault tests' trial counts, table and JSON document (pure parts of ``faults``)."""

from __future__ import annotations

import pytest

from tests.e2e.faults import (
    DEFAULT_TRIALS,
    FaultRecord,
    Trial,
    TrialsError,
    document,
    table,
    trial_counts,
)


@pytest.mark.parametrize(
    ("text", "changed"),
    [
        pytest.param("", {}, id="unset-keeps-the-defaults"),
        pytest.param(" 20 ", dict.fromkeys(DEFAULT_TRIALS, 20), id="one-number-for-all"),
        pytest.param("extender-sigkill=20", {"extender-sigkill": 20}, id="one-fault"),
        pytest.param(
            "extender-sigkill=20, node-recreate=2",
            {"extender-sigkill": 20, "node-recreate": 2},
            id="two-faults",
        ),
    ],
)
def test_trial_counts(text: str, changed: dict[str, int]) -> None:
    assert trial_counts(text) == {**DEFAULT_TRIALS, **changed}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0", "'0' is not a whole number of at least 1", id="zero"),
        pytest.param("typo=3", "'typo=3' is not NAME=COUNT", id="unknown-fault"),
        pytest.param("extender-sigkill", "'extender-sigkill' is not NAME=COUNT", id="no-count"),
        pytest.param("node-recreate=x", "node-recreate: 'x' is not a whole number", id="bad-count"),
    ],
)
def test_bad_trial_counts_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TrialsError, match=message.replace("(", r"\(")):
        trial_counts(text)


def test_the_table_and_document_sum_every_trial() -> None:
    kill = FaultRecord("extender-sigkill", [Trial(0, 0, 4.0), Trial(0, 0, 6.5), Trial(1, 2, 9.0)])
    none = FaultRecord("node-recreate")
    lines = table([kill, none]).splitlines()
    assert lines[0].split("  ")[0] == "fault"
    assert lines[1].split() == ["extender-sigkill", "3", "1", "2", "6.5", "/", "9.0"]
    assert lines[2].split() == ["node-recreate", "0", "0", "0", "-"]
    doc = document([kill], command="make soak")
    faults = doc["faults"]
    assert isinstance(faults, list) and len(faults) == 1
    fault = faults[0]
    assert fault["recovery_s_median"] == 6.5 and fault["recovery_s_max"] == 9.0
    assert len(fault["trial_results"]) == 3 and doc["command"] == "make soak"
