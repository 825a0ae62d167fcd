"""The kube-scheduler extender wire format (``k8s.io/kube-scheduler/extender/v1``), typed at the edge.

The Go structs carry no json tags, so kube-scheduler sends the Go field names (``Pod``,
``NodeNames``, ``PodUID``) and reads replies case-insensitively. Decoding here is strict about
types and presence but accepts any casing of the top-level keys, as Go's decoder does; replies
are always written in the exact Go spelling. Bodies are parsed and written with orjson: the
filter sits on the scheduler's critical path, one pod at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import orjson

from placement.fields import quote
from placement.nodegpustate import parse_time

MAX_EXTENDER_PRIORITY = 10
MIN_EXTENDER_PRIORITY = 0

DNS_SUBDOMAIN_MAX = 253
"""Longest node or pod name (a DNS subdomain)."""
DNS_LABEL_MAX = 63
"""Longest namespace (a DNS label)."""
UID_MAX = 36
"""Longest UID (the API server makes them as UUIDs)."""
RESOURCE_VERSION_MAX = 64
"""Longest resourceVersion kept (opaque, but etcd revisions are integers of a few digits)."""


class WireError(ValueError):
    """A request that does not match the protocol; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NodeListJSON(TypedDict):
    metadata: NotRequired[dict[str, Any]]
    items: list[dict[str, Any]]


class ExtenderFilterResultJSON(TypedDict):
    """``ExtenderFilterResult``: ``NodeNames`` when node-cache capable, ``Nodes`` otherwise."""

    NodeNames: NotRequired[list[str] | None]
    Nodes: NotRequired[NodeListJSON | None]
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str


class HostPriorityJSON(TypedDict):
    """One ``HostPriority``; prioritize answers a bare JSON array of these."""

    Host: str
    Score: int


@dataclass(frozen=True, slots=True)
class PodRef:
    """Identity of the pod in a request, read once at the edge."""

    name: str
    namespace: str
    uid: str
    resource_version: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    """A decoded filter/prioritize request.

    ``node_names`` keeps the scheduler's order. ``node_objects`` is set only when the scheduler
    is not node-cache capable and sent whole Node objects, which a filter reply must echo.
    """

    pod: Mapping[str, Any]
    ref: PodRef
    node_names: tuple[str, ...]
    node_objects: tuple[dict[str, Any], ...] | None


@dataclass(frozen=True, slots=True)
class BindingArgs:
    """A decoded bind request."""

    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str

    @property
    def key(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"


class MetaPodJSON(TypedDict):
    """``MetaPod``: a victim by UID."""

    UID: str


class MetaVictimsJSON(TypedDict):
    """``MetaVictims``: one node's victims by UID, and how many of them violate a PDB."""

    Pods: list[MetaPodJSON]
    NumPDBViolations: int


class ExtenderPreemptionResultJSON(TypedDict):
    """``ExtenderPreemptionResult``: always in Meta form, whatever the request's form."""

    NodeNameToMetaVictims: dict[str, MetaVictimsJSON]


@dataclass(frozen=True, slots=True)
class OfferedVictim:
    """One victim kube-scheduler offers: its UID, and its priority and start time (epoch
    seconds) when the request carried the whole pod (``None`` in Meta form)."""

    uid: str
    priority: int | None = None
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class NodeVictims:
    """One candidate node's victims (each UID once, in the scheduler's order) and its count of
    PodDisruptionBudget violations."""

    victims: tuple[OfferedVictim, ...]
    num_pdb_violations: int


@dataclass(frozen=True, slots=True)
class PreemptionArgs:
    """A decoded preempt request (``ExtenderPreemptionArgs``): the preemptor and, by node in
    the scheduler's order, the victims it offers."""

    pod: Mapping[str, Any]
    ref: PodRef
    nodes: dict[str, NodeVictims]


def _load(body: bytes) -> Any:
    if not body:
        raise WireError("empty request body; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"request body is not valid JSON: {exc}") from None


def _fold(obj: Mapping[str, Any], what: str) -> dict[str, tuple[str, Any]]:
    """Keys folded to lower case, as Go's case-insensitive decoder matches them."""
    folded: dict[str, tuple[str, Any]] = {}
    for key, value in obj.items():
        low = key.lower()
        if low in folded:
            first = quote(folded[low][0])
            raise WireError(f"{what}: keys {first} and {quote(key)} name the same field")
        folded[low] = (key, value)
    return folded


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _string(
    value: object, where: str, *, allow_empty: bool = False, max_len: int | None = None
) -> str:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected a string, got {_type_name(value)}")
    if not value and not allow_empty:
        raise WireError(f"{where}: must not be empty")
    if max_len is not None and len(value) > max_len:
        raise WireError(f"{where}: longer than {max_len} characters ({len(value)})")
    return value


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{where}: expected an object, got {_type_name(value)}")
    return value


def _all_strings(values: list[Any]) -> bool:
    """Whether every item is a string, in one C loop: ``str.join`` refuses anything else."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _check_pod_shape(pod: Mapping[str, Any]) -> PodRef:
    """The parts of a v1.Pod that vramfit reads must have the types the API server guarantees."""
    meta = _object(pod.get("metadata"), "Pod.metadata")
    name = _string(meta.get("name"), "Pod.metadata.name", max_len=DNS_SUBDOMAIN_MAX)
    namespace = _string(
        meta.get("namespace", "default"), "Pod.metadata.namespace", max_len=DNS_LABEL_MAX
    )
    uid = _string(meta.get("uid"), "Pod.metadata.uid", max_len=UID_MAX)
    rv = _string(
        meta.get("resourceVersion", ""),
        "Pod.metadata.resourceVersion",
        allow_empty=True,
        max_len=RESOURCE_VERSION_MAX,
    )
    annotations = meta.get("annotations")
    if annotations is not None:
        for k, v in _object(annotations, "Pod.metadata.annotations").items():
            _string(v, f"Pod.metadata.annotations[{quote(k)}]", allow_empty=True)
    spec = pod.get("spec")
    if spec is not None:
        spec = _object(spec, "Pod.spec")
        for field in ("containers", "initContainers"):
            containers = spec.get(field)
            if containers is None:
                continue
            if not isinstance(containers, list):
                raise WireError(
                    f"Pod.spec.{field}: expected an array, got {_type_name(containers)}"
                )
            for i, item in enumerate(containers):
                container = _object(item, f"Pod.spec.{field}[{i}]")
                resources = container.get("resources")
                if resources is None:
                    continue
                resources = _object(resources, f"Pod.spec.{field}[{i}].resources")
                for kind in ("limits", "requests"):
                    if resources.get(kind) is not None:
                        _object(resources[kind], f"Pod.spec.{field}[{i}].resources.{kind}")
    return PodRef(name=name, namespace=namespace, uid=uid, resource_version=rv)


def decode_extender_args(body: bytes) -> ExtenderArgs:
    """Decode a filter/prioritize body; raises ``WireError`` naming the bad field."""
    raw = _object(_load(body), "request body")
    fields = _fold(raw, "request body")
    if "pod" not in fields or fields["pod"][1] is None:
        raise WireError("Pod: missing")
    pod = _object(fields["pod"][1], fields["pod"][0])
    ref = _check_pod_shape(pod)
    names_raw = fields.get("nodenames", ("NodeNames", None))[1]
    nodes_raw = fields.get("nodes", ("Nodes", None))[1]
    if names_raw is not None:
        if not isinstance(names_raw, list):
            raise WireError(f"NodeNames: expected an array, got {_type_name(names_raw)}")
        if (
            _all_strings(names_raw)
            and "" not in names_raw
            and max(map(len, names_raw), default=0) <= DNS_SUBDOMAIN_MAX
        ):
            names = tuple(names_raw)  # the common case, checked without a per-name call
        else:
            names = tuple(
                _string(n, f"NodeNames[{i}]", max_len=DNS_SUBDOMAIN_MAX)
                for i, n in enumerate(names_raw)
            )
        return ExtenderArgs(pod=pod, ref=ref, node_names=names, node_objects=None)
    if nodes_raw is not None:
        node_list = _fold(_object(nodes_raw, "Nodes"), "Nodes")
        items = node_list.get("items", ("items", None))[1]
        if items is None:
            items = []
        if not isinstance(items, list):
            raise WireError(f"Nodes.items: expected an array, got {_type_name(items)}")
        objects: list[dict[str, Any]] = []
        names_list: list[str] = []
        for i, item in enumerate(items):
            node = _object(item, f"Nodes.items[{i}]")
            meta = _object(node.get("metadata"), f"Nodes.items[{i}].metadata")
            names_list.append(
                _string(
                    meta.get("name"),
                    f"Nodes.items[{i}].metadata.name",
                    max_len=DNS_SUBDOMAIN_MAX,
                )
            )
            objects.append(dict(node))
        return ExtenderArgs(
            pod=pod, ref=ref, node_names=tuple(names_list), node_objects=tuple(objects)
        )
    raise WireError("neither NodeNames nor Nodes given; expected the candidate nodes")


_BINDING_FIELDS = {
    "PodName": DNS_SUBDOMAIN_MAX,
    "PodNamespace": DNS_LABEL_MAX,
    "PodUID": UID_MAX,
    "Node": DNS_SUBDOMAIN_MAX,
}


def decode_binding_args(body: bytes) -> BindingArgs:
    """Decode a bind body; raises ``WireError`` naming the bad field."""
    raw = _object(_load(body), "request body")
    fields = _fold(raw, "request body")
    values: dict[str, str] = {}
    for go_name, max_len in _BINDING_FIELDS.items():
        key, value = fields.get(go_name.lower(), (go_name, None))
        if value is None:
            raise WireError(f"{go_name}: missing")
        values[go_name] = _string(value, key, max_len=max_len)
    return BindingArgs(
        pod_name=values["PodName"],
        pod_namespace=values["PodNamespace"],
        pod_uid=values["PodUID"],
        node=values["Node"],
    )


INT64_MAX = 2**63 - 1


def _victim(raw: object, where: str, meta: bool) -> OfferedVictim:
    """One ``MetaPod`` (``{"UID": ...}``) or one whole victim pod."""
    obj = _object(raw, where)
    if meta:
        key, uid = _fold(obj, where).get("uid", ("UID", None))
        return OfferedVictim(_string(uid, f"{where}.{key}", max_len=UID_MAX))
    meta_obj = _object(obj.get("metadata"), f"{where}.metadata")
    uid = _string(meta_obj.get("uid"), f"{where}.metadata.uid", max_len=UID_MAX)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    priority = _object(spec, f"{where}.spec").get("priority")
    if priority is not None and (type(priority) is not int or abs(priority) > 2**31):
        raise WireError(f"{where}.spec.priority: expected an int32, got {_type_name(priority)}")
    start = _object(status, f"{where}.status").get("startTime")
    started = None
    if start is not None:
        try:
            started = parse_time(_string(start, f"{where}.status.startTime", max_len=64))
        except ValueError:
            raise WireError(f"{where}.status.startTime: not an RFC 3339 time") from None
    return OfferedVictim(uid, priority, started)


def _node_victims(raw: object, where: str, meta: bool) -> NodeVictims:
    fields = _fold(_object(raw, where), where)
    key, pods = fields.get("pods", ("Pods", None))
    if pods is None:
        pods = []
    if not isinstance(pods, list):
        raise WireError(f"{where}.{key}: expected an array, got {_type_name(pods)}")
    victims = [_victim(p, f"{where}.{key}[{i}]", meta) for i, p in enumerate(pods)]
    key, count = fields.get("numpdbviolations", ("NumPDBViolations", 0))
    if type(count) is not int or not 0 <= count <= INT64_MAX:
        raise WireError(f"{where}.{key}: expected a count, got {_type_name(count)} {count!r:.20}")
    first: dict[str, OfferedVictim] = {}
    for victim in victims:
        first.setdefault(victim.uid, victim)
    return NodeVictims(tuple(first.values()), count)


def decode_preemption_args(body: bytes) -> PreemptionArgs:
    """Decode a preempt body: the preemptor, and victims by node in ``NodeNameToMetaVictims``
    (node-cache capable) or ``NodeNameToVictims`` (whole pods); raises ``WireError`` naming
    the bad field."""
    raw = _object(_load(body), "request body")
    fields = _fold(raw, "request body")
    if "pod" not in fields or fields["pod"][1] is None:
        raise WireError("Pod: missing")
    pod = _object(fields["pod"][1], fields["pod"][0])
    ref = _check_pod_shape(pod)
    meta = fields.get("nodenametometavictims", ("NodeNameToMetaVictims", None))
    full = fields.get("nodenametovictims", ("NodeNameToVictims", None))
    if meta[1] is not None and full[1] is not None:
        raise WireError(f"both {meta[0]} and {full[0]} given; expected one")
    if meta[1] is None and full[1] is None:
        raise WireError("neither NodeNameToMetaVictims nor NodeNameToVictims given")
    key, by_node = meta if meta[1] is not None else full
    nodes: dict[str, NodeVictims] = {}
    for name, victims in _object(by_node, key).items():
        _string(name, f"{key} node name", max_len=DNS_SUBDOMAIN_MAX)
        nodes[name] = _node_victims(victims, f"{key}[{quote(name)}]", meta[1] is not None)
    return PreemptionArgs(pod=pod, ref=ref, nodes=nodes)


def preemption_result(
    chosen: Mapping[str, tuple[Sequence[str], int]],
) -> ExtenderPreemptionResultJSON:
    """The preempt reply: by node, the victims' UIDs (in the order given) and the PDB count."""
    return {
        "NodeNameToMetaVictims": {
            node: {"Pods": [{"UID": u} for u in uids], "NumPDBViolations": count}
            for node, (uids, count) in chosen.items()
        }
    }


def _as_dict(reasons: Mapping[str, str]) -> dict[str, str]:
    """A reply's reasons as a dict, without copying one already (thousands of entries)."""
    return reasons if type(reasons) is dict else dict(reasons)


def filter_result(
    args: ExtenderArgs,
    passed: Sequence[str],
    failed: Mapping[str, str],
    unresolvable: Mapping[str, str],
    error: str = "",
) -> ExtenderFilterResultJSON:
    """The filter reply in the shape the request asked for (names, or whole Node objects).

    ``passed`` is always a list, so "none passed" is ``"NodeNames": []``: a null would also
    mean none to kube-scheduler, but says it less plainly.
    """
    result: ExtenderFilterResultJSON = {
        "FailedNodes": _as_dict(failed),
        "FailedAndUnresolvableNodes": _as_dict(unresolvable),
        "Error": error,
    }
    if args.node_objects is None:
        result["NodeNames"] = list(passed)
    else:
        keep = set(passed)
        by_name = {o["metadata"]["name"]: o for o in args.node_objects}
        result["Nodes"] = {
            "metadata": {},
            "items": [by_name[n] for n in args.node_names if n in keep],
        }
    return result


def error_filter_result(args: ExtenderArgs | None, message: str) -> ExtenderFilterResultJSON:
    """A filter reply that reports a real fault (kube-scheduler retries the pod later)."""
    result: ExtenderFilterResultJSON = {
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": message,
    }
    if args is None or args.node_objects is None:
        result["NodeNames"] = []
    else:
        result["Nodes"] = {"metadata": {}, "items": []}
    return result


def encode(value: object) -> bytes:
    """Serialize a reply."""
    return orjson.dumps(value)


# Characters a JSON string must escape: a name without any is written as it is.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_BETWEEN = [f'","Score":{s}}},{{"Host":"' for s in range(MAX_EXTENDER_PRIORITY + 1)]
_LAST = [f'","Score":{s}}}]' for s in range(MAX_EXTENDER_PRIORITY + 1)]


def encode_priorities(names: Sequence[str], scores: Sequence[int]) -> bytes:
    """Serialize a prioritize reply: ``[{"Host": name, "Score": score}, ...]``.

    The same bytes as ``encode`` of the list of ``HostPriorityJSON``, without a dictionary per
    node: at thousands of nodes those are most of prioritize's time and keep the garbage
    collector busy. Names that need escaping, and scores outside 0..10, take the plain path.
    """
    if len(names) != len(scores):
        raise ValueError(f"{len(names)} names but {len(scores)} scores")
    top = MAX_EXTENDER_PRIORITY
    if (
        not names
        or _NEEDS_ESCAPE.search("".join(names))
        or min(scores) < MIN_EXTENDER_PRIORITY
        or max(scores) > top
    ):
        hosts: list[HostPriorityJSON] = [
            {"Host": n, "Score": s} for n, s in zip(names, scores, strict=True)
        ]
        return orjson.dumps(hosts)
    parts: list[str] = [""] * (2 * len(names))
    parts[0::2] = names
    parts[1::2] = [_BETWEEN[s] for s in scores]
    parts[-1] = _LAST[scores[-1]]
    return ('[{"Host":"' + "".join(parts)).encode()
