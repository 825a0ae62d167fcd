"""The ``preempt`` verb: which of kube-scheduler's preemption candidates vramfit keeps, and with
which victims.

kube-scheduler calls it (``preemptVerb``) after its own dry run, with the victims it picked on
each candidate node by counting whole GPUs: by UID (``NodeNameToMetaVictims``) since vramfit
sets ``nodeCacheCapable``, or as whole pods otherwise. The reply is always in Meta form. A node
left out of the reply is no longer a candidate; a node in it must keep at least one victim, and
only victims that were offered (kube-scheduler looks each UID up on its node and fails the whole
call otherwise).

Per node, ``placement.preemption.choose_victims`` decides by the same rules as the filter
(``fit()``): the fewest offered victims whose GPUs make the pod fit, or the node is dropped,
its reject class counted (``vramfit_extender_preemption_nodes``) and its reason logged. Victim
priorities and start times come from the request (whole pods) or from the pod watch. The
scheduler's ``NumPDBViolations`` is passed on; for a narrowed set it is capped at the victims
kept (the Meta form does not say which victims violate a budget, so the count never drops
below the truth and a narrowed node never looks safer than it is).

Across the nodes that work, ``placement.preemption.preferred`` then drops those where the pod's
load would score worse (by the filter's score under the pod's profile: loads in flight, weights
cached, ...) than on a node kube-scheduler ranks no lower by its first criteria, so that its
pick among the rest does not pile the pod's load onto a node already loading when another would
do; such a node is counted and logged as ``load-elsewhere``. The GPUs the pod would take on each
node answered are remembered for the room its nomination holds (``extender.nominations``).

No new preemption is offered while the pod's earlier victims are still leaving its nominated
node (gone from the API, but still in the node's report, or releasing memory) and would make
room for it there: kube-scheduler sees the room free as soon as they are deleted, and would
otherwise, finding vramfit's filter still refusing the node, evict more pods elsewhere
(``extender.nominations``).

No preemption is offered either while the view is not current, for a pod whose annotations
cannot be read, or for a member of a multi-node group (vramfit places a group whole; evicting
for one member would free GPUs the group still cannot use). A pod that requests no GPU gets the
offer back unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from extender.config import Settings
from extender.decisions import InvalidPodError, read_demand
from extender.metrics import ExtenderMetrics
from extender.state import ClusterState
from extender.wire import (
    ExtenderPreemptionResultJSON,
    NodeVictims,
    PreemptionArgs,
    decode_preemption_args,
    preemption_result,
)
from placement.fields import reason_line
from placement.fleet import NO_REPORT, REASON_NO_REPORT
from placement.membership import MembershipError, membership_of
from placement.model import Demand
from placement.policies import resolve_profile
from placement.preemption import (
    Candidate,
    Chosen,
    Victim,
    choose_victims,
    preferred,
    refusal_class,
    without,
)

log = logging.getLogger(__name__)

NO_VICTIMS = "no-victims"
"""The class of a node offered without victims (a node in the reply must keep one)."""
LOAD_ELSEWHERE = "load-elsewhere"
"""The class of a node that works, dropped for one where the pod's load scores higher."""
LOGGED_DROPS = 5
"""Dropped nodes logged one by one per call; the rest are counted in one line."""

Kept = dict[str, tuple[tuple[str, ...], int]]


class Preemption:
    """The preempt verb's handler, bound to one state and its metrics."""

    def __init__(
        self,
        settings: Settings,
        state: ClusterState,
        metrics: ExtenderMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.clock = clock

    def _answer(self, outcome: str, reason: str, kept: Kept) -> ExtenderPreemptionResultJSON:
        self.metrics.decisions.labels("preempt", outcome, reason).inc()
        return preemption_result(kept)

    def handle(self, body: bytes) -> ExtenderPreemptionResultJSON:
        """Decode, decide per node, encode (``WireError`` for a malformed request)."""
        args = decode_preemption_args(body)
        key = args.ref.key
        unsynced = self.state.unsynced()
        if unsynced:
            log.info("preempt %s: no preemption while the view is not current", key)
            return self._answer("error", "not-ready", {})
        try:
            demand = read_demand(args.pod, self.settings.policy)
            group = membership_of(args.pod)
        except (InvalidPodError, MembershipError) as exc:
            log.info("preempt %s: no preemption for a pod vramfit cannot read: %s", key, exc)
            return self._answer("refused", "invalid-pod", {})
        if demand is None or demand.gpus == 0:
            offer = {
                n: (tuple(x.uid for x in v.victims), v.num_pdb_violations)
                for n, v in args.nodes.items()
                if v.victims
            }
            return self._answer("passthrough", "", offer)
        if group is not None:
            log.info("preempt %s: no preemption for a member of group %s", key, group.key)
            return self._answer("refused", "group", {})
        waiting = self._waiting(args, demand)
        if waiting:
            log.info(
                "preempt %s: its victims on %s are still leaving: no new preemption", key, waiting
            )
            return self._answer("waiting", "victims-leaving", {})
        return self._answer("answered", "", self._decide(args, demand))

    def _waiting(self, args: PreemptionArgs, demand: Demand) -> str:
        """The pod's nominated node, when the pods leaving it (gone or terminating, still in its
        report) free what the pod needs there: the room is on its way, and another preemption
        would evict for nothing. "" otherwise."""
        status = args.pod.get("status")
        node = status.get("nominatedNodeName") if isinstance(status, Mapping) else None
        if not isinstance(node, str) or not node:
            return ""
        leaving = self.state.leaving(node)
        if not leaving:
            return ""
        now = self.clock()
        with self.state.locked_view(now) as view:
            if node not in view.fleet:
                return ""
            got = choose_victims(
                view.fleet.node(node),
                demand,
                [Victim(u) for u in sorted(leaving)],
                view.fleet.claims.on_node(node),
                now=now,
                settings=self.settings.fit,
                pod_uid=args.ref.uid,
            )
        return node if isinstance(got, Chosen) else ""

    def _victims(self, args: PreemptionArgs) -> dict[str, list[Victim]]:
        """Each node's offered victims, with priority and start from the request or the watch."""
        known = self.state.pods_of(x.uid for v in args.nodes.values() for x in v.victims)
        out: dict[str, list[Victim]] = {}
        for node, offered in args.nodes.items():
            out[node] = []
            for x in offered.victims:
                info = known.get(x.uid)
                priority, started = x.priority, x.started_at
                if priority is None:
                    priority = info.priority if info is not None else 0
                if started is None and info is not None:
                    started = info.started_at
                out[node].append(Victim(x.uid, priority, started))
        return out

    def _decide(self, args: PreemptionArgs, demand: Demand) -> Kept:
        now, ref = self.clock(), args.ref
        victims = self._victims(args)
        kept: Kept = {}
        outcomes: dict[str, str] = {}  # node kept: "kept" as offered, or "narrowed"
        candidates: list[Candidate] = []
        dropped: list[tuple[str, str, str]] = []  # node, class, reason
        rooms: dict[str, tuple[str, ...]] = {}
        with self.state.locked_view(now) as view:
            for node, offered in args.nodes.items():
                if not offered.victims:  # kube-scheduler sends none such; nothing to answer
                    dropped.append((node, NO_VICTIMS, "no victims offered"))
                    continue
                if node not in view.fleet:
                    why = view.invalid.get(node, REASON_NO_REPORT)
                    dropped.append((node, NO_REPORT, why))
                    continue
                state = view.fleet.node(node)
                reservations = view.fleet.claims.on_node(node)
                got = choose_victims(
                    state,
                    demand,
                    victims[node],
                    reservations,
                    now=now,
                    settings=self.settings.fit,
                    pod_uid=ref.uid,
                )
                if isinstance(got, Chosen):
                    kept[node], outcomes[node] = _keep(offered, got)
                    rooms[node] = got.fit.gpu_uuids
                    answered = set(kept[node][0])
                    candidates.append(
                        Candidate(
                            state,
                            tuple(reservations),
                            got,
                            tuple(v for v in victims[node] if v.uid in answered),
                            kept[node][1],
                        )
                    )
                    continue
                gone = {v.uid for v in victims[node]}
                cls = refusal_class(
                    without(state, gone),
                    demand,
                    [r for r in reservations if r.pod_uid not in gone],
                    now=now,
                    settings=self.settings.fit,
                    pod_uid=ref.uid,
                )
                dropped.append((node, cls, got.reject.reason))
            best = preferred(
                candidates,
                demand,
                now=now,
                profile=resolve_profile(demand, self.settings.policy),
                pod_uid=ref.uid,
            )
            why = "the pod's load scores higher on a node that disrupts no more"
            for node in [n for n in kept if n not in best]:
                del kept[node], outcomes[node], rooms[node]
                dropped.append((node, LOAD_ELSEWHERE, why))
            self.state.propose(ref.uid, rooms)
        for outcome in outcomes.values():
            self.metrics.preemption_nodes.labels(outcome, "").inc()
        for _, cls, _ in dropped:
            self.metrics.preemption_nodes.labels("dropped", cls).inc()
        for node, cls, why in dropped[:LOGGED_DROPS]:
            log.info("preempt %s: node %s dropped (%s): %s", ref.key, node, cls, reason_line(why))
        if len(dropped) > LOGGED_DROPS:
            log.info("preempt %s: %d more nodes dropped", ref.key, len(dropped) - LOGGED_DROPS)
        return kept


def _keep(offered: NodeVictims, got: Chosen) -> tuple[tuple[tuple[str, ...], int], str]:
    """The victims to answer for a node and its PDB count (see the module docstring), and
    whether the offer is "kept" or "narrowed"."""
    uids = tuple(x.uid for x in offered.victims)
    if not got.victims or set(got.victims) == set(uids):
        # vramfit needs none (the scheduler's own count says some), or needs them all.
        return (uids, offered.num_pdb_violations), "kept"
    return (got.victims, min(offered.num_pdb_violations, len(got.victims))), "narrowed"
