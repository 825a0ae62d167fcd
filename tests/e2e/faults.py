"""What the fault tests measure, how many trials each runs, and how the results are shown.

Every fault test runs some trials; each trial records the GPUs found double-booked (two bound
pods' reservations naming one GPU, or an agent reporting one GPU held by two pods), the pods
lost (a burst pod that ended neither bound nor pending-and-accounted-for) and the seconds from
the end of the fault until the burst was whole again. The figures are printed as a table at the
end of the run and, when ``VRAMFIT_FAULTS_JSON`` names a file (``make soak``), written there.

Trial counts: ``VRAMFIT_FAULT_TRIALS`` is either one number for every fault or
``name=N`` pairs separated by commas (``extender-sigkill=20,node-recreate=3``); a fault it does
not name keeps its default (:data:`DEFAULT_TRIALS`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

TRIALS_ENV: Final = "VRAMFIT_FAULT_TRIALS"
JSON_ENV: Final = "VRAMFIT_FAULTS_JSON"
DEFAULT_TRIALS: Final[Mapping[str, int]] = {
    "extender-sigkill": 3,
    "apiserver-restart": 1,
    "leader-failover": 1,
    "node-recreate": 1,
}


class TrialsError(ValueError):
    """``VRAMFIT_FAULT_TRIALS`` cannot be read; the message says what is wrong."""


def trial_counts(text: str, defaults: Mapping[str, int] = DEFAULT_TRIALS) -> dict[str, int]:
    """Pure: the number of trials of each fault, from the environment variable's ``text``."""
    counts = dict(defaults)
    text = text.strip()
    if not text:
        return counts
    if text.isdigit():
        return dict.fromkeys(counts, _positive(text, TRIALS_ENV))
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in counts:
            known = ", ".join(sorted(counts))
            raise TrialsError(
                f"{TRIALS_ENV}: {part.strip()!r} is not NAME=COUNT with NAME one of {known}"
            )
        counts[name] = _positive(value.strip(), f"{TRIALS_ENV} {name}")
    return counts


def _positive(value: str, where: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise TrialsError(f"{where}: {value!r} is not a whole number of at least 1")
    return int(value)


@dataclass(frozen=True)
class Trial:
    """One trial of one fault."""

    double_booked: int
    lost: int
    recovery_s: float
    detail: str = ""


@dataclass
class FaultRecord:
    """Every trial of one fault."""

    fault: str
    trials: list[Trial] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        recoveries = [t.recovery_s for t in self.trials]
        return {
            "fault": self.fault,
            "trials": len(self.trials),
            "gpus_double_booked": sum(t.double_booked for t in self.trials),
            "pods_lost": sum(t.lost for t in self.trials),
            "recovery_s_median": round(statistics.median(recoveries), 2) if recoveries else None,
            "recovery_s_max": round(max(recoveries), 2) if recoveries else None,
        }


def table(records: Sequence[FaultRecord]) -> str:
    """Pure: the records as a fixed-width table, one line per fault."""
    header = ("fault", "trials", "GPUs double-booked", "pods lost", "recovery s (median/max)")
    rows = [header]
    for record in records:
        s = record.summary()
        recovery = (
            "-"
            if s["recovery_s_median"] is None
            else f"{s['recovery_s_median']:.1f} / {s['recovery_s_max']:.1f}"
        )
        rows.append(
            (
                record.fault,
                str(s["trials"]),
                str(s["gpus_double_booked"]),
                str(s["pods_lost"]),
                recovery,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def document(records: Sequence[FaultRecord], *, command: str) -> dict[str, object]:
    """Pure: the JSON document ``make soak`` writes."""
    return {
        "command": command,
        "faults": [
            {**record.summary(), "trial_results": [asdict(t) for t in record.trials]}
            for record in records
        ],
    }


def write_json(path: Path, records: Sequence[FaultRecord], *, command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(records, command=command), indent=2) + "\n")
