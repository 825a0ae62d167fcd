"""The fit rules evaluated over a whole fleet at once: the extender's fast path.

``placement.reference.decide`` defines placement one node at a time and stays the readable
reference. kube-scheduler asks the extender about thousands of nodes per pod, one pod at a
time, so this package keeps the per-node view in numpy arrays that watch events update node by
node, and answers a ``Query`` with a few hundred vector operations: which nodes fit, on which
GPUs, and for the others the very reason and resolvable flag ``fit()`` gives; scores with the
policies of ``placement.policies``; and the node ``decide()`` picks. A hypothesis test on
random fleets holds the two equal: ``tests/placement/test_fleet_equivalence.py``. Change a rule
in the reference first, then here.

The rooms, in the order a request passes through them:

* ``rows``: what a node must be to be held, and what is kept per node beside the arrays;
* ``store``: ``Fleet``, the arrays and their updates (``replace``, ``renew``, ``remove``);
* ``evaluation``: ``Query``, and ``fit()``'s rules checked over every row at once, the device
  plugin's picks read from tables by NVLink layout and mask (``plugin``);
* ``rejects``: the reasons of the nodes that do not fit, worded once per distinct reason, and
  their classes (``REJECT_CLASSES``);
* ``scores``: the policies array-wise;
* ``standing``: the lean evaluation and scores kept per demand shape across requests, redone
  only for the rows whose report or reservations changed;
* ``decision``: ``verdict``, ``evaluate``, ``decide_fleet`` (evaluate, score, choose) and
  ``score_nodes`` for prioritize.

Pure: no I/O, no clock (``now`` is in the query). A ``Fleet`` is mutable and not locked; its
owner serializes updates and reads.
"""

from placement.fleet.decision import (
    FleetDecision,
    FleetVerdict,
    decide_fleet,
    evaluate,
    score_nodes,
    verdict,
)
from placement.fleet.evaluation import Query
from placement.fleet.rejects import (
    AGENT_ERROR,
    GPU_PRODUCT,
    GPU_TOO_SMALL,
    GPU_UNFIT,
    GPUS_BUSY,
    LEASE_EXPIRED,
    LOAD_BUDGET,
    NO_GPUS,
    NO_LEASE,
    NO_REPORT,
    NVLINK_ISLAND_TOO_SMALL,
    NVLINK_SPLIT,
    REASON_NO_REPORT,
    REJECT_CLASSES,
    REPORT_STALE,
)
from placement.fleet.rows import MAX_GPUS_PER_NODE, FleetError, FleetRow
from placement.fleet.store import Fleet

__all__ = [
    "AGENT_ERROR",
    "GPUS_BUSY",
    "GPU_PRODUCT",
    "GPU_TOO_SMALL",
    "GPU_UNFIT",
    "LEASE_EXPIRED",
    "LOAD_BUDGET",
    "MAX_GPUS_PER_NODE",
    "NO_GPUS",
    "NO_LEASE",
    "NO_REPORT",
    "NVLINK_ISLAND_TOO_SMALL",
    "NVLINK_SPLIT",
    "REASON_NO_REPORT",
    "REJECT_CLASSES",
    "REPORT_STALE",
    "Fleet",
    "FleetDecision",
    "FleetError",
    "FleetRow",
    "FleetVerdict",
    "Query",
    "decide_fleet",
    "evaluate",
    "score_nodes",
    "verdict",
]
