"""Why the nodes that do not fit do not: ``fit()``'s own reasons, worded per distinct reason.

A scheduler extender reports reasons only when no node fits, and at thousands of nodes wording
one per node is most of a request's cost. So reasons are worded only on request, and once per
distinct reason: the rejected rows are grouped by what their reason quotes (``_reject_keys``),
and one row of each group is worded by ``fit()``'s reason functions (``_word``), so each node
reads exactly what ``fit()`` (and ``placement.reference``) would say. Without words, the
rejected nodes are still counted by class (``REJECT_CLASSES``: short, bounded names that serve
as metric labels). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import compress
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from placement.fit import (
    CAUSES,
    REASON_NO_GPUS,
    REASON_NO_LEASE,
    reason_agent_error,
    reason_lease_expired,
    reason_no_island,
    reason_no_product,
    reason_not_free,
    reason_not_selected,
    reason_report_old,
    reason_split,
    reason_too_small,
    reason_unfit_gpus,
    unallocated_gpus,
)
from placement.fleet.evaluation import (
    CODE_AGENT_ERROR,
    CODE_AGENT_ERROR_NO_GPUS,
    CODE_LEASE_OLD,
    CODE_LOAD_BUDGET,
    CODE_NO_GPUS,
    CODE_NO_ISLAND,
    CODE_NO_LEASE,
    CODE_NO_PRODUCT,
    CODE_NOT_FREE,
    CODE_OK,
    CODE_REPORT_OLD,
    CODE_SPLIT,
    CODE_TOO_SMALL,
    CODE_UNFIT,
    CODE_UNRESOLVABLE,
    Evaluation,
)
from placement.fleet.rows import IntArray, RowArray
from placement.fleet.store import Fleet, names_hash
from placement.loadbudget import reason_load_budget
from placement.model import Allocator, Demand, Reject

REASON_NO_REPORT = "no GPU report from the vramfit node agent for this node"
"""Why a node the fleet does not hold is rejected (resolvable: its agent may yet report)."""

# Reject classes: short, bounded names for what kind of reason a node got (metric labels).
NO_GPUS = "no-gpus"
GPU_PRODUCT = "gpu-product"
GPU_TOO_SMALL = "gpu-too-small"
NVLINK_ISLAND_TOO_SMALL = "nvlink-island-too-small"
AGENT_ERROR = "agent-error"
NO_LEASE = "no-lease"
LEASE_EXPIRED = "lease-expired"
REPORT_STALE = "report-stale"
GPUS_BUSY = "gpus-busy"
GPU_UNFIT = "unallocated-gpu-unfit"
NVLINK_SPLIT = "nvlink-split"
LOAD_BUDGET = "load-budget"
NO_REPORT = "no-report"
CLASS_OF = {
    CODE_AGENT_ERROR_NO_GPUS: AGENT_ERROR,
    CODE_NO_GPUS: NO_GPUS,
    CODE_NO_PRODUCT: GPU_PRODUCT,
    CODE_TOO_SMALL: GPU_TOO_SMALL,
    CODE_NO_ISLAND: NVLINK_ISLAND_TOO_SMALL,
    CODE_AGENT_ERROR: AGENT_ERROR,
    CODE_NO_LEASE: NO_LEASE,
    CODE_LEASE_OLD: LEASE_EXPIRED,
    CODE_REPORT_OLD: REPORT_STALE,
    CODE_NOT_FREE: GPUS_BUSY,
    CODE_UNFIT: GPU_UNFIT,
    CODE_SPLIT: NVLINK_SPLIT,
    CODE_LOAD_BUDGET: LOAD_BUDGET,
}
REJECT_CLASSES = frozenset({*CLASS_OF.values(), NO_REPORT})
"""Every class ``FleetDecision.reject_counts`` may name: one per kind of ``fit()`` reason
(``gpus-busy`` covers every cause of "free now", ``unallocated-gpu-unfit`` an unallocated GPU
that could not hold the pod, ``agent-error`` both of its forms, ``load-budget`` a node whose
cold loads in flight leave no room for the pod's), and
``no-report`` for a node the fleet does not hold."""


def reject_counts(names: Sequence[str], ev: Evaluation) -> dict[str, int]:
    """The named nodes that do not fit, counted by reject class (from the result codes, with
    no reason worded)."""
    return _tally(ev.code[ev.rows], len(names) - len(ev.names))


def _tally(codes: IntArray, missing: int) -> dict[str, int]:
    """Result codes counted by reject class, and ``missing`` nodes the fleet does not hold."""
    tally = np.bincount(codes, minlength=len(CLASS_OF) + 1).tolist()
    counts: dict[str, int] = {}
    for c, n in enumerate(tally):
        if c != CODE_OK and n:
            name = CLASS_OF[c]
            counts[name] = counts.get(name, 0) + n
    if missing:
        counts[NO_REPORT] = missing
    return counts


class NamedCounts(Mapping[str, int]):
    """``reject_counts`` of a request that was decided over the fleet's own list of names
    (``decide_fleet``'s whole-fleet shortcut), settled when first read.

    The counts over every node the fleet held (``every``) are the request's when it names
    exactly those nodes, which the hash of its set of names says (``names_hash``, equal to the
    fleet's ``every_hash``). That hash costs about as much as the rest of such a decision, and
    only the metrics read the counts, so it is worked out when they are read: a scheduler
    extender does that after its reply. When the sets differ, the named nodes are counted
    again from the evaluation's own names and rows, as the fleet held them when it decided.
    """

    __slots__ = ("_counts", "_ev", "_every", "_every_hash", "_names")

    def __init__(
        self, names: Sequence[str], ev: Evaluation, every: Mapping[str, int], every_hash: int
    ) -> None:
        self._names: Sequence[str] = names
        self._ev: Evaluation | None = ev
        self._every = every
        self._every_hash = every_hash
        self._counts: Mapping[str, int] | None = None

    @property
    def settled(self) -> bool:
        """Whether the counts were worked out already."""
        return self._counts is not None

    def _settle(self) -> Mapping[str, int]:
        counts, ev = self._counts, self._ev
        if counts is None:
            if ev is None or names_hash(self._names) == self._every_hash:
                counts = self._every
            else:
                row = dict(zip(ev.names, ev.rows.tolist(), strict=True))
                at = np.fromiter((row.get(n, -1) for n in self._names), np.intp, len(self._names))
                found = at[at >= 0]
                counts = _tally(ev.code[found], len(self._names) - len(found))
            self._counts, self._names, self._ev = counts, (), None  # let the request go
        return counts

    def __getitem__(self, key: str) -> int:
        return self._settle()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._settle())

    def __len__(self) -> int:
        return len(self._settle())

    def __repr__(self) -> str:
        return f"NamedCounts({dict(self._settle())!r})"


def _group(keys: npt.NDArray[Any]) -> tuple[list[int], IntArray]:
    """Where each distinct key first occurs, and which distinct key each entry has.

    Keys with several columns become one integer when their digits fit (a mixed radix over
    small non-negative counts), else one opaque byte string each.
    """
    if keys.ndim > 1:
        # By column, each laid out in a row of its own: numpy reduces a few wide rows many
        # times faster than many narrow ones.
        cols = np.ascontiguousarray(keys.T)
        low, high = cols.min(initial=0), cols.max(initial=0)
        radix = [int(x) + 1 for x in cols.max(axis=1, initial=0).tolist()]
        if low >= 0 and high < 2**31 and math.prod(radix) < 2**62:
            flat = np.zeros(len(keys), dtype=np.int64)
            for column, base in zip(cols, radix, strict=True):
                flat *= base
                flat += column
            keys = flat
        else:
            packed = np.ascontiguousarray(keys)
            keys = packed.view(np.dtype((np.void, packed.dtype.itemsize * packed.shape[1])))
            keys = keys.ravel()
    if keys.dtype.kind == "i" and len(keys):
        low, high = int(keys.min()), int(keys.max())
        if low >= 0 and high < 4 * len(keys) + 4096:
            return _dense_group(keys, high)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first.tolist(), inverse.reshape(-1)


def _dense_group(keys: IntArray, high: int) -> tuple[list[int], IntArray]:
    """``_group`` for small non-negative integer keys (at most ``high``), without sorting:
    a table by key of where each first occurs (assigned from the end, the first one stays)."""
    at = np.arange(len(keys))
    first_at = np.full(high + 1, -1, dtype=np.int64)
    first_at[keys[::-1]] = at[::-1]
    distinct = np.flatnonzero(first_at >= 0)  # the keys present, in order, as np.unique
    number = np.empty(high + 1, dtype=np.int64)
    number[distinct] = np.arange(len(distinct))
    first: list[int] = first_at[distinct].tolist()
    return first, number[keys]


def _reject_keys(c: int, rows: RowArray, fleet: Fleet, ev: Evaluation) -> npt.NDArray[Any]:
    """A key per row, equal exactly where fit() words the reason the same."""
    if c in (CODE_NO_GPUS, CODE_NO_LEASE):
        return np.zeros(len(rows), dtype=np.int64)
    if c in (CODE_AGENT_ERROR, CODE_AGENT_ERROR_NO_GPUS, CODE_UNFIT):
        return rows.astype(np.int64)
    if c == CODE_NO_PRODUCT:
        return fleet.described[rows]
    if c == CODE_TOO_SMALL:
        return np.stack([ev.large[rows], fleet.described[rows]], axis=1)
    if c == CODE_NO_ISLAND:
        return ev.best_island[rows]
    if c == CODE_LEASE_OLD:
        return np.stack([ev.lease_age[rows], fleet.lease_duration[rows]], axis=1).view(np.int64)
    if c == CODE_REPORT_OLD:
        return ev.report_age[rows].view(np.int64)
    if c == CODE_NOT_FREE:
        why = ev.why_counts()
        free_now = np.maximum(ev.free_now[rows], 0)
        return np.stack([free_now, *(why[w][rows] for w in CAUSES)], axis=1)
    if c == CODE_LOAD_BUDGET:
        assert ev.cold_loads is not None and ev.cold_bytes is not None
        bandwidth = fleet.remote_bw[rows].view(np.int64)
        return np.stack([ev.cold_loads[rows], ev.cold_bytes[rows], bandwidth], axis=1)
    return -np.sort(-ev.island_counts[:, rows].T, axis=1)  # split: sizes, largest first


_FIXED = {CODE_NO_GPUS: REASON_NO_GPUS, CODE_NO_LEASE: REASON_NO_LEASE}
"""The reasons that quote nothing of the node."""


def _word(c: int, r: int, fleet: Fleet, ev: Evaluation, demand: Demand) -> str:
    """The reason for the node in row ``r``, by fit()'s own reason functions."""
    k, vram = demand.gpus, demand.vram_per_gpu
    row = fleet.row(r)
    fixed = _FIXED.get(c)
    if fixed is not None:
        return fixed
    if c in (CODE_AGENT_ERROR, CODE_AGENT_ERROR_NO_GPUS):
        return reason_agent_error(row.node.agent_error)
    if c == CODE_NO_PRODUCT:
        if not demand.products:
            return reason_not_selected(row.described)
        return reason_no_product(demand.products, row.described)
    if c == CODE_TOO_SMALL:
        return reason_too_small(k, vram, int(ev.large[r]), row.described)
    if c == CODE_NO_ISLAND:
        return reason_no_island(k, int(ev.best_island[r]))
    if c == CODE_LEASE_OLD:
        return reason_lease_expired(float(ev.lease_age[r]), float(fleet.lease_duration[r]))
    if c == CODE_REPORT_OLD:
        return reason_report_old(float(ev.report_age[r]), ev.max_report_age_s)
    if c == CODE_NOT_FREE:
        why = {w: int(v[r]) for w, v in ev.why_counts().items()}
        return reason_not_free(k, int(ev.free_now[r]), why)
    if c == CODE_UNFIT:
        gpus = sorted(row.node.gpus, key=lambda g: g.index)
        if ev.considered is not None:
            gpus = [g for g in gpus if ev.considered[row.slot[g.uuid], r]]
        unfit = reason_unfit_gpus(unallocated_gpus(gpus, ev.pod_uid)[0], demand)
        assert unfit is not None  # the row's code says one GPU is unfit
        return unfit
    if c == CODE_LOAD_BUDGET:
        return _word_budget(r, fleet, ev)
    dra = demand.allocator is Allocator.DRA
    return reason_split(k, ev.island_counts[:, r].tolist(), dra=dra)


def _word_budget(r: int, fleet: Fleet, ev: Evaluation) -> str:
    """The load budget's reason for the node in row ``r`` (``loadbudget.reason_load_budget``)."""
    assert ev.cold_loads is not None and ev.cold_bytes is not None
    assert ev.load_budget_s is not None  # rows get this code only under a budget
    return reason_load_budget(
        int(ev.cold_loads[r]),
        int(ev.cold_bytes[r]),
        ev.new_bytes,
        float(fleet.remote_bw[r]),
        ev.load_budget_s,
    )


RESOLVABLE = np.ones(max(CLASS_OF) + 1, dtype=np.bool_)
RESOLVABLE[list(CODE_UNRESOLVABLE)] = False
"""By result code: whether a node rejected with it may take the pod later."""

_NOT_FREE: dict[tuple[int, ...], str] = {}
"""The worded reasons of busy nodes, by GPUs asked, GPUs free now and the count of each cause
(``CAUSES``): the texts depend on nothing else, and a busy fleet asks for the same few again
and again."""


def _not_free_words(k: int, keys: list[list[int]]) -> list[str]:
    """``reason_not_free`` for each key row of ``_reject_keys`` (free now, then the count of
    each cause in ``CAUSES``' order), each text worded once and kept."""
    if len(_NOT_FREE) > MAX_WORDED:
        _NOT_FREE.clear()
    words = []
    for key in keys:
        memo = (k, *key)
        text = _NOT_FREE.get(memo)
        if text is None:
            why = dict(zip(CAUSES, key[1:], strict=True))
            text = _NOT_FREE[memo] = reason_not_free(k, key[0], why)
        words.append(text)
    return words


MAX_WORDED = 1 << 17
"""Reasons a fleet keeps worded (``Fleet.reason_memo``, all demands together) before it forgets
them all."""
MAX_ASKED = 1 << 10
"""Demands a fleet keeps worded reasons for before it forgets them all."""


def _unfit_words(fleet: Fleet, rows: RowArray, ev: Evaluation, demand: Demand) -> list[str]:
    """The reasons of ``rows`` where an unallocated GPU could not hold the pod.

    Such a reason names each unfit GPU's free memory, so alike nodes seldom share one and
    grouping does not help; but it depends only on the row's GPUs (its version,
    ``Fleet.generation``) and the demand, so each is worded once per row version and demand,
    and kept: kube-scheduler asks again and again about the pods no node can take.
    """
    # The GPUs a pod holds itself are unallocated for it: its reasons are its own.
    own = ev.pod_uid if fleet.holds(ev.pod_uid) else ""
    asked = (demand.vram_per_gpu, demand.products, demand.allocator, own)
    memo = fleet.reason_memo.get(asked)  # by row version, for this demand
    if memo is None:
        memo = fleet.reason_memo[asked] = {}
    generations = fleet.generation[rows].tolist()
    words = list(map(memo.get, generations))
    if None not in words:
        return cast(list[str], words)
    # New texts to keep: the pods' annotations choose the demands, so all of them together
    # stay within MAX_WORDED texts and MAX_ASKED demands.
    kept = fleet.reason_memo
    if len(kept) > MAX_ASKED or sum(map(len, kept.values())) + len(words) > MAX_WORDED:
        kept.clear()
        memo = kept[asked] = {}
    for i, r in enumerate(rows.tolist()):
        if words[i] is None:
            words[i] = memo[generations[i]] = _word(CODE_UNFIT, r, fleet, ev, demand)
    return cast(list[str], words)  # no None is left


def reasons_of(
    fleet: Fleet, names: Sequence[str], ev: Evaluation, demand: Demand
) -> tuple[list[str], list[str], list[bool]]:
    """Each named node that does not fit, its reason and whether it is resolvable, in request
    order. Nodes are grouped by what their reason quotes; each distinct reason is worded once.
    Raises ``ValueError`` for a lean evaluation, which keeps none of what reasons quote."""
    if ev.lean:
        raise ValueError("a lean evaluation words no reasons: evaluate again with lean=False")
    codes = ev.code[ev.rows]
    rejected = np.flatnonzero(codes != CODE_OK)
    if not len(rejected) and len(ev.names) == len(names):
        return [], [], []
    codes = codes[rejected]
    rows = ev.rows[rejected]
    texts = np.empty(len(rejected), dtype=object)
    for c in np.flatnonzero(np.bincount(codes)).tolist():
        where = np.flatnonzero(codes == c)
        if c == CODE_UNFIT and ev.considered is None:
            texts[where] = _unfit_words(fleet, rows[where], ev, demand)
            continue
        keys = _reject_keys(c, rows[where], fleet, ev)
        first, inverse = _group(keys)
        if c == CODE_NOT_FREE:
            words = _not_free_words(demand.gpus, keys[first].tolist())
        else:
            words = [_word(c, int(rows[where[j]]), fleet, ev, demand) for j in first]
        texts[where] = np.array(words, dtype=object)[inverse]
    named = ev.names
    known = list(named) if len(rejected) == len(named) else [named[i] for i in rejected.tolist()]
    text_list: list[str] = texts.tolist()
    resolvable: list[bool] = RESOLVABLE[codes].tolist()
    if len(ev.names) == len(names):
        return known, text_list, resolvable
    # Some names are not in the fleet: put them in request order among the others.
    found = dict(zip(known, zip(text_list, resolvable, strict=True), strict=True))
    out: tuple[list[str], list[str], list[bool]] = ([], [], [])
    for name in names:
        text, res = (REASON_NO_REPORT, True) if name not in fleet else found.get(name, ("", None))
        if res is not None:
            out[0].append(name)
            out[1].append(text)
            out[2].append(res)
    return out


def rejects_of(
    fleet: Fleet, names: Sequence[str], ev: Evaluation, demand: Demand
) -> dict[str, Reject]:
    """A ``Reject`` for each named node that does not fit, in request order."""
    rejected, texts, resolvable = reasons_of(fleet, names, ev, demand)
    return dict(zip(rejected, map(Reject, rejected, texts, resolvable), strict=True))


def split(
    rejected: Sequence[str], texts: Sequence[str], resolvable: Sequence[bool]
) -> tuple[dict[str, str], dict[str, str]]:
    """Reasons by node, split into resolvable and unresolvable, in request order."""
    if all(resolvable):
        return dict(zip(rejected, texts, strict=True)), {}
    if not any(resolvable):
        return {}, dict(zip(rejected, texts, strict=True))
    hard = np.logical_not(np.frombuffer(bytes(resolvable), dtype=np.bool_)).tolist()
    return (
        dict(zip(compress(rejected, resolvable), compress(texts, resolvable), strict=True)),
        dict(zip(compress(rejected, hard), compress(texts, hard), strict=True)),
    )
