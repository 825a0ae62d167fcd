"""The scoring policies of ``placement.policies``, computed array-wise over a fleet's rows.

``row_scores`` gives each row the score ``policies.score`` gives the node, bit for bit: the
same arithmetic in the same order, on byte counts exact in float64. A policy registered
without a form here fails loudly (a test runs every registered policy through both).
``placement.fleet.decision.score_nodes`` is what a scheduler extender's prioritize asks for.
Pure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from placement.fleet.evaluation import Evaluation
from placement.fleet.rows import NO_ROWS, BoolArray, FloatArray, IntArray
from placement.fleet.store import Fleet
from placement.model import Demand
from placement.policies import MAX_SCORE, Profile

HALVES: FloatArray = np.power(0.5, np.arange(1100.0))
"""``0.5 ** n`` for ``n`` loads in flight, each exact (0.0 from 1075 on, as Python's float
gives): one gather instead of ``pow()`` per row."""


def _clamp(x: FloatArray) -> FloatArray:
    return np.maximum(0.0, np.minimum(MAX_SCORE, x))


def row_scores(fleet: Fleet, ev: Evaluation, demand: Demand, profile: Profile) -> FloatArray:
    """The profile's score by row (of ``ev.cols``), with the arithmetic of ``policies.score``
    (same bits). A row that does not fit may have any score; the rows that fit have theirs.
    Scores kept across requests (``ev.scored``, ``placement.fleet.standing``) are read back."""
    if ev.scored is not None:
        return ev.scored(profile)
    span, cols = len(ev.code), ev.cols
    chosen = ev.chosen
    present: BoolArray = fleet.present[:, cols]
    healthy: BoolArray = fleet.healthy[:, cols]
    held: BoolArray = fleet.held[:, cols]
    free: IntArray = fleet.free[:, cols]
    total_sum = fleet.total_sum[cols]
    # In place where it can be: at thousands of rows, each temporary is a pass over memory.
    taken = held | ev.hidden
    taken |= chosen
    free_after = present & healthy
    free_after &= np.logical_not(taken, out=taken)
    free_now = (free * free_after).sum(axis=0)  # a product: np.where makes a copy first
    fraction = np.divide(free_now, total_sum, out=np.zeros(span), where=total_sum > 0)
    np.minimum(fraction, 1.0, out=fraction)
    np.maximum(fraction, 0.0, out=fraction)
    k = demand.gpus
    pairs = k * (k - 1) // 2
    link_fraction = np.ones(span)  # every pair of a complete row's GPUs is linked
    partial = np.flatnonzero(~fleet.complete[cols] & chosen.any(axis=0)) if pairs else NO_ROWS
    if len(partial):
        picked = chosen[:, partial].T  # row x slot
        # Ordered pairs (a, b) of chosen GPUs joined by NVLink, per row: twice the pairs.
        both = picked[:, :, None] & fleet.linked[ev.at(partial)] & picked[:, None, :]
        linked = both.view(np.uint8).sum(axis=(1, 2), dtype=np.int64)
        link_fraction[partial] = (linked // 2) / pairs
    loads = np.minimum(np.maximum(0, ev.loads), len(HALVES) - 1)
    policy_values: dict[str, Callable[[], FloatArray]] = {
        "vram-binpack": lambda: _clamp(MAX_SCORE * (1.0 - fraction)),
        "vram-spread": lambda: _clamp(MAX_SCORE * fraction),
        "in-flight-penalty": lambda: _clamp(MAX_SCORE * HALVES[loads]),
        "cache-affinity": lambda: np.where(fleet.cached(demand.model_id)[cols], MAX_SCORE, 0.0),
        "nvlink-quality": lambda: _clamp(MAX_SCORE * link_fraction),
    }
    total = np.zeros(span)
    for name, weight in profile.weights:
        if name not in policy_values:  # a policy registered without its fleet form
            raise NotImplementedError(
                f"policy {name!r} has no fleet form in placement.fleet.scores"
            )
        total = total + policy_values[name]() * weight
    return _clamp(total / profile.total_weight)
