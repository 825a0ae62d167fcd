"""Room for large pods over a fleet's rows: ``placement.room``'s rule, one evaluation per
waiting demand.

For each waiting demand other than the pod's own, the fleet's own evaluation (``evaluate_rows``,
the load budget left out) says which named rows could take it and how many GPUs each has free;
when it is short, the rows the pod would leave short of it are kept, and when the pod fits
elsewhere and would leave those rows fewer free GPUs in all than the waiting pods that fit only
there need, all of them are kept. The choice in
``placement.fleet.decision`` then prefers the rows kept for no one. Pure.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from placement.fleet.evaluation import CODE_OK, Query
from placement.fleet.rows import BoolArray, IntArray
from placement.fleet.standing import standing_evaluation
from placement.fleet.store import Fleet
from placement.model import Demand


def kept_rows(fleet: Fleet, query: Query, fits: BoolArray) -> BoolArray:
    """By row (``span`` rows): kept for a waiting demand (``room.kept_nodes``); ``fits`` are
    the rows the pod fits."""
    kept = np.zeros(fleet.span, dtype=np.bool_)
    demand, waiting = query.demand, query.waiting
    k = demand.gpus
    settings = dataclasses.replace(query.settings, load_budget_s=None)
    could: dict[Demand, BoolArray] = {}
    free: dict[Demand, IntArray] = {}
    for wanted, count in waiting:
        if wanted == demand or count <= 0 or wanted in could:
            continue
        ask = dataclasses.replace(
            query, demand=wanted, settings=settings, eligible=None, waiting=()
        )
        ev = standing_evaluation(fleet, ask)  # codes and free GPUs only
        mask = np.zeros(fleet.span, dtype=np.bool_)
        mask[ev.rows] = ev.code[ev.rows] == CODE_OK
        could[wanted], free[wanted] = mask, ev.free_now
    for wanted, count in waiting:
        if wanted == demand or count <= 0:
            continue
        rows = could[wanted]
        elsewhere = bool((fits & ~rows).any())
        last = int(rows.sum()) <= sum(n for w, n in waiting if w.gpus >= wanted.gpus)
        if last and (wanted.gpus > k or elsewhere):
            kept |= rows & (free[wanted] - k < wanted.gpus)
        if elsewhere and rows.any():
            need = sum(
                n * w.gpus
                for w, n in waiting
                if w != demand and n > 0 and could[w].any() and not (could[w] & ~rows).any()
            )
            if int(free[wanted][rows].sum()) - k < need:
                kept |= rows
    return kept
