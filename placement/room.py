"""Room for large pods: a pod does not take the last nodes a waiting pod could use, when it
could go elsewhere.

Scores alone spread or pack pods by what the node looks like now; they know nothing of the
8-GPU pod that is waiting, or about to be created, and a burst of one-GPU pods can break every
node that could take it. So a decision may be told the demand that is *waiting*: pods refused
for want of room (the extender sees them), and in the simulator also the pods the services may
still scale up to, each shape with how many pods of it may come. Precisely, for a pod of ``k``
GPUs and each waiting demand ``W`` other than the pod's own:

* the nodes that could take ``W`` are the named ones where ``fit()`` accepts it now, the load
  budget left out (a node busy loading frees up in minutes, GPUs in hours);
* ``W`` is *short* when those nodes are no more than the waiting pods of ``W``'s size or
  larger (each needs one of them, or more room than ``W`` on one);
* a ``W`` of at most ``k`` GPUs counts only when the pod fits some node ``W`` could not use (a
  large pod keeps off the nodes a more constrained small one needs, if it can);
* each node that could take a short ``W`` is *kept* for it where the pod would leave it fewer
  free GPUs (unallocated and not promised to a waiting pod, as ``fit()`` counts them) than
  ``W`` needs;
* and, when the pod fits some node ``W`` could not use, every node that could take ``W`` is
  kept if the pod would leave them fewer free GPUs in all than the waiting pods need that fit
  only there (each waiting demand, ``W`` included, whose nodes are all among ``W``'s, counted
  as pods times GPUs). This is the rule for a class of GPUs: on a pool of 40 and 80 GB GPUs,
  one-GPU pods that fit anywhere would otherwise take 80 GB GPUs one by one, each leaving
  every node enough for ``W``, until the 70B pods that need 80 GB have too few left.

The pod then goes to the best-scoring node kept for no waiting demand, and only when every node
it fits is kept, to the best of those: room for other pods never makes a pod wait, and never
changes a score, only which fit is chosen. ``placement.reference.decide`` and
``placement.fleet.decide_fleet`` both follow it (``kept_nodes`` here, ``placement.fleet.room``
over the rows). Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence

from placement.fit import fit, pending_counts, unallocated_gpus
from placement.model import Demand, Fit, FitSettings, NodeState, Reservation

Waiting = Sequence[tuple[Demand, int]]
"""Demands that are waiting or likely, each with how many pods of it may come."""


def free_gpus(node: NodeState, others: Iterable[Reservation], now: float, pod_uid: str) -> int:
    """GPUs of ``node`` the kubelet may still hand out: unallocated (for ``pod_uid``), less
    those promised to pods that have not got theirs (``fit()``'s count)."""
    unallocated, _ = unallocated_gpus(node.gpus, pod_uid)
    return len(unallocated) - sum(pending_counts(node, others, now))


def kept_nodes(
    nodes: Sequence[NodeState],
    demand: Demand,
    fitting: Collection[str],
    others: Sequence[Reservation],
    waiting: Waiting,
    *,
    now: float,
    settings: FitSettings,
    pod_uid: str = "",
) -> frozenset[str]:
    """The names of ``nodes`` kept for a waiting demand, which a pod with ``demand`` (fitting
    the nodes named in ``fitting``) takes only when it fits nowhere else (pure; see the module
    docstring). ``others`` are the reservations that count (the pod's own left out)."""
    open_settings = dataclasses.replace(settings, load_budget_s=None)
    could: dict[Demand, list[NodeState]] = {}
    for wanted, count in waiting:
        if wanted != demand and count > 0 and wanted not in could:
            could[wanted] = [
                n
                for n in nodes
                if isinstance(
                    fit(n, wanted, others, now=now, settings=open_settings, pod_uid=pod_uid), Fit
                )
            ]
    names_of = {w: frozenset(n.name for n in ns) for w, ns in could.items()}
    kept: set[str] = set()
    for wanted, count in waiting:
        if wanted == demand or count <= 0:
            continue
        names = names_of[wanted]
        elsewhere = any(f not in names for f in fitting)
        last = len(names) <= sum(c for w, c in waiting if w.gpus >= wanted.gpus)
        if last and (wanted.gpus > demand.gpus or elsewhere):
            for n in could[wanted]:
                if free_gpus(n, others, now, pod_uid) - demand.gpus < wanted.gpus:
                    kept.add(n.name)
        if elsewhere and names:
            need = sum(
                c * w.gpus
                for w, c in waiting
                if w != demand and c > 0 and names_of[w] and names_of[w] <= names
            )
            supply = sum(free_gpus(n, others, now, pod_uid) for n in could[wanted])
            if supply - demand.gpus < need:
                kept |= names
    return frozenset(kept)
