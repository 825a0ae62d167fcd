"""The device plugin's answers for many rows at once, read from tables rather than worked out.

Which GPUs the kubelet's device plugin hands a pod, and whether they lie on one NVLink island,
depend on a row only through its NVLink layout and its mask of available GPUs
(``placement.deviceplugin``). The fleet keeps each answer once (``Fleet.plugin_memo``); for
nodes of up to ``DENSE_WIDTH`` GPUs it also lays them out in dense tables indexed by
``nvlink_id << width | mask``, so a request over thousands of rows reads them with one gather
instead of grouping the rows and looping over the groups. Masks are summed in the narrowest
unsigned type that holds them (``slot_masks``): numpy adds bytes many at a time. Pure, but for
the memo and the tables, which only grow (bounded) and never change an answer.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from placement.deviceplugin import predicted_allocation
from placement.fleet.rows import BoolArray, IntArray
from placement.fleet.store import Fleet
from placement.shape import NvLink

DENSE_WIDTH = 10
"""Nodes of at most this many GPUs read the answers from dense tables (``1 << width`` entries
per NVLink layout and GPU count asked)."""

MAX_ANSWERS = 1 << 16
"""Answers the fleet's memo keeps before it forgets them all."""


def slot_masks(b: BoolArray) -> IntArray:
    """Per row of ``b`` (``slot x row``, at most 62 slots): its true slots as the bits of one
    int, bit ``s`` for slot ``s``."""
    width = b.shape[0]
    for dtype, bits in ((np.uint8, 8), (np.uint16, 16), (np.uint32, 32)):
        if width <= bits:
            weights: npt.NDArray[Any] = np.array([1 << s for s in range(width)], dtype=dtype)
            masks = np.multiply(b.view(np.uint8), weights[:, None]).sum(axis=0, dtype=dtype)
            narrow: IntArray = masks.astype(np.int64)
            return narrow
    wide: IntArray = (np.int64(1) << np.arange(width, dtype=np.int64)) @ b
    return wide


@cache
def lowest_slots(width: int) -> IntArray:
    """By mask of ``width`` bits: its lowest set bit (0 for the empty mask)."""
    masks = np.arange(1 << width, dtype=np.int64)
    low = masks & -masks
    out: IntArray = np.zeros(1 << width, dtype=np.int64)
    out[1:] = np.log2(low[1:]).round().astype(np.int64)
    return out


def _one_island(gpus: frozenset[int], layout: NvLink) -> bool:
    return any(gpus <= set(island) for island in layout.islands)


def plugin_answer(fleet: Fleet, nvlink_id: int, mask: int, k: int) -> tuple[BoolArray, bool]:
    """The device plugin's pick of ``k`` of the GPUs in ``mask`` (by slot) on a node of NVLink
    layout ``nvlink_id``, and whether they lie on one island; kept in ``Fleet.plugin_memo``."""
    memo, width = fleet.plugin_memo, fleet.width
    # By width too: the picks are a slot mask, and the fleet widens for a node of more GPUs.
    found: tuple[BoolArray, bool] | None = memo.get((nvlink_id, mask, k, width))
    if found is None:
        if len(memo) > MAX_ANSWERS:
            memo.clear()
        layout = fleet.nvlinks[nvlink_id]
        predicted = predicted_allocation(mask, k, layout)
        picks = np.zeros(width, dtype=np.bool_)
        picks[sorted(predicted)] = True
        found = memo[(nvlink_id, mask, k, width)] = (picks, _one_island(predicted, layout))
    return found


def plugin_picks(
    fleet: Fleet, masks: IntArray, nvlink_id: IntArray, k: int
) -> tuple[BoolArray, BoolArray]:
    """For each row's mask of available GPUs (``slot_masks``, the rows' layouts in
    ``nvlink_id``), at most ``DENSE_WIDTH`` slots: the device plugin's pick of ``k`` GPUs
    (``row x slot``) and whether it lies on one island.

    The tables live in ``Fleet.plugin_memo`` under ``(-1, k, width)``, grown when a new layout
    appears; an entry is filled the first time its key is asked for."""
    width = fleet.width
    keys = (nvlink_id << width) | masks
    size = len(fleet.nvlinks) << width
    memo = fleet.plugin_memo
    table: tuple[BoolArray, BoolArray, BoolArray] | None = memo.get((-1, k, width))
    if table is None or len(table[2]) < size:
        grown = (
            np.zeros((size, width), dtype=np.bool_),
            np.zeros(size, dtype=np.bool_),
            np.zeros(size, dtype=np.bool_),
        )
        for new, old in zip(grown, table or (), strict=False):
            new[: len(old)] = old
        table = memo[(-1, k, width)] = grown
    picks, same, known = table
    lacking = keys[~known[keys]]
    for key in np.unique(lacking).tolist() if len(lacking) else ():
        picks[key], same[key] = plugin_answer(fleet, key >> width, key & ((1 << width) - 1), k)
        known[key] = True
    return picks[keys], same[keys]
