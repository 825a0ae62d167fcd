"""Room for large pods over a fleet's rows: ``placement.room``'s rule, one evaluation per
waiting demand.

For each waiting demand other than the pod's own, the fleet's own evaluation (``evaluate_rows``,
the load budget left out) says which named rows could take it and how many GPUs each has free;
when it is short, the rows the pod would leave short of it are kept. The choice in
``placement.fleet.decision`` then prefers the rows kept for no one. Pure.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from placement.fleet.evaluation import CODE_OK, Query, evaluate_rows
from placement.fleet.rows import BoolArray
from placement.fleet.store import Fleet


def kept_rows(fleet: Fleet, query: Query, fits: BoolArray) -> BoolArray:
    """By row (``span`` rows): kept for a waiting demand (``room.kept_nodes``); ``fits`` are
    the rows the pod fits."""
    kept = np.zeros(fleet.span, dtype=np.bool_)
    demand, waiting = query.demand, query.waiting
    k = demand.gpus
    settings = dataclasses.replace(query.settings, load_budget_s=None)
    for wanted, count in waiting:
        if wanted == demand or count <= 0:
            continue
        ask = dataclasses.replace(
            query, demand=wanted, settings=settings, eligible=None, waiting=()
        )
        ev = evaluate_rows(fleet, ask)
        could = np.zeros(fleet.span, dtype=np.bool_)
        could[ev.rows] = ev.code[ev.rows] == CODE_OK
        if int(could.sum()) > sum(n for w, n in waiting if w.gpus >= wanted.gpus):
            continue
        if wanted.gpus <= k and not (fits & ~could).any():
            continue
        kept |= could & (ev.free_now - k < wanted.gpus)
    return kept
