"""Hostile requests to the extender, as hypothesis strategies: what ``make fuzz`` sends.

Each strategy draws one ``Hostile`` request: a scheduler verb with a pod and nodes an attacker
chose (unknown pods and nodes, names past their Kubernetes sizes, annotations that are invalid,
forged or huge), a body that is not JSON or not the protocol, a body over the limit (with a
length and chunked), or a slow client (connections that send half a request and wait, or drip
bytes). Sizes are drawn as numbers and the bytes built from them, so a 256 KiB annotation costs
hypothesis nothing to draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st

from placement.demand import (
    A_GPU_PRODUCT,
    A_MODEL,
    A_MODEL_SIZE,
    A_NVLINK,
    A_POLICY,
    A_RESERVATION,
    A_VRAM_PER_GPU,
)

FLEET = 64
"""Nodes the fuzzed server holds: ``n0`` .. ``n63``."""

KINDS = ("filter", "prioritize", "bind", "malformed", "oversized", "slow", "stray")


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile request: ``kind`` (one of ``KINDS``), the method and path, the body, and
    for the slow kinds how many connections stall and for how long."""

    kind: str
    method: str
    path: str
    body: bytes = b""
    chunked: bool = False
    nodes: int = 0
    stalled: int = 0
    stall_s: float = 0.0
    drip: bool = False
    notes: tuple[str, ...] = field(default=())


def _sized(size: int, fill: str = "x") -> str:
    return fill * size


SIZES = st.sampled_from([0, 1, 63, 64, 253, 254, 1024, 64 * 1024, 256 * 1024])
TEXT = st.text(max_size=40)
KNOWN = st.sampled_from([f"n{i}" for i in range(FLEET)])
NAME = st.one_of(
    KNOWN,
    TEXT.filter(bool),
    SIZES.map(lambda n: _sized(max(n, 1), "n")),
    st.sampled_from(["", "../etc", "n0\n", "n0 ", "N0", "kube-system/p"]),
)
UID = st.one_of(st.uuids().map(str), TEXT, SIZES.map(lambda n: _sized(n, "u")))

FORGED = orjson.dumps(
    {
        "v": 1,
        "node": "n0",
        "gpus": [f"GPU-n0-{i}" for i in range(8)],
        "bytesPerGpu": 80 * 1024**3,
        "model": "",
        "at": "2099-01-01T00:00:00Z",
    }
).decode()
ANNOTATION_VALUE = st.one_of(
    TEXT,
    SIZES.map(_sized),
    st.sampled_from(["70Gi", "-1", "1e400", "NaN", "required", "binpack", FORGED, "{", "[]"]),
    st.integers(min_value=1, max_value=40_000).map(
        lambda n: ",".join(f"P{i}" for i in range(n))  # a long, valid product list
    ),
)
VRAMFIT_KEY = st.sampled_from(
    [A_VRAM_PER_GPU, A_MODEL, A_MODEL_SIZE, A_NVLINK, A_GPU_PRODUCT, A_POLICY, A_RESERVATION]
)
HUGE_VALUE = st.sampled_from([64 * 1024, 256 * 1024]).map(_sized)
ANNOTATION_KEY = st.one_of(
    VRAMFIT_KEY,
    TEXT,
    SIZES.map(lambda n: _sized(max(n, 1), "k")),
)
GPUS = st.one_of(
    st.integers(min_value=0, max_value=9).map(str),
    st.integers(min_value=1, max_value=8).map(str),
    st.sampled_from(["-1", "1.5", "1e9", "1e30", "x", "", True, None]),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    """A pod whose every part an attacker chose: half of them well formed (a GPU request, a
    name, a UID) with hostile annotations, so the request gets past decoding into a decision."""
    annotations = draw(st.dictionaries(ANNOTATION_KEY, ANNOTATION_VALUE, max_size=4))
    if draw(st.booleans()):
        gpus: Any = str(draw(st.integers(min_value=1, max_value=8)))
        annotations |= draw(st.dictionaries(VRAMFIT_KEY, HUGE_VALUE, min_size=1, max_size=2))
        meta = {"name": f"p-{draw(st.integers(0, 999))}", "namespace": "fuzz"}
        meta |= {"uid": str(draw(st.uuids())), "resourceVersion": "1"}
    else:
        gpus = draw(GPUS)
        meta = {
            "name": draw(st.one_of(st.just("p"), st.just("p"), NAME)),
            "namespace": draw(st.one_of(st.just("fuzz"), st.just("fuzz"), NAME)),
            "uid": draw(st.one_of(st.uuids().map(str), UID)),
            "resourceVersion": draw(st.sampled_from(["1", "", "99999999999999999999"])),
        }
    resources = draw(
        st.sampled_from(
            [
                {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
                {"limits": {"nvidia.com/gpu": gpus}},
                {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}},
            ]
        )
    )
    return {
        "metadata": meta | {"annotations": annotations},
        "spec": {
            "schedulerName": draw(st.sampled_from(["vramfit", "default-scheduler"])),
            "containers": [{"name": "c", "resources": resources}],
        },
    }


@st.composite
def verbs(draw: st.DrawFn) -> Hostile:
    """Filter, prioritize or bind, with the protocol's shape and an attacker's content."""
    verb = draw(st.sampled_from(["filter", "prioritize", "bind"]))
    if verb == "bind":
        binding = {
            "PodName": draw(st.one_of(st.just("p"), NAME)),
            "PodNamespace": draw(st.one_of(st.just("fuzz"), NAME)),
            "PodUID": draw(UID),
            "Node": draw(NAME),
        }
        return Hostile(verb, "POST", f"/scheduler/{verb}", orjson.dumps(binding), nodes=1)
    names = draw(st.lists(st.one_of(KNOWN, KNOWN, KNOWN, NAME), max_size=32))
    many = draw(st.sampled_from([0, 0, 0, 1000, 5000]))  # a scheduler's worth of names
    names += [f"n{i % FLEET}" if i % 3 else f"ghost-{i}" for i in range(many)]
    body = orjson.dumps({"Pod": draw(pods()), "NodeNames": names})
    return Hostile(verb, "POST", f"/scheduler/{verb}", body, nodes=len(names))


MALFORMED = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b'{"Pod": NaN}',
            b"[" * 100_000,
            b'{"Pod": {}, "pod": {}}',
            b'{"Pod": {"metadata": {"name": 1}}, "NodeNames": ["n0"]}',
            b'{"PodName": "p", "PodNamespace": "fuzz", "PodUID": 7, "Node": "n0"}',
            b"\xff\xfe\x00",
        ]
    ),
)


@st.composite
def malformed(draw: st.DrawFn) -> Hostile:
    verb = draw(st.sampled_from(["filter", "prioritize", "bind"]))
    return Hostile("malformed", "POST", f"/scheduler/{verb}", draw(MALFORMED))


@st.composite
def oversized(draw: st.DrawFn) -> Hostile:
    """A body past the default limit (about 3.9 MiB), with a Content-Length or chunked."""
    size = draw(st.sampled_from([5 * 1024**2, 8 * 1024**2]))
    return Hostile(
        "oversized",
        "POST",
        "/scheduler/filter",
        b'{"Pod": "' + b"x" * size + b'"}',
        chunked=draw(st.booleans()),
    )


@st.composite
def slow(draw: st.DrawFn) -> Hostile:
    """Connections that stall on the verb port (half a request, or bytes dripped), then a
    filter on a fresh connection, which must still be answered."""
    return Hostile(
        "slow",
        "POST",
        "/scheduler/filter",
        stalled=draw(st.integers(min_value=1, max_value=16)),
        stall_s=draw(st.sampled_from([0.0, 0.1, 0.3])),
        drip=draw(st.booleans()),
    )


@st.composite
def stray(draw: st.DrawFn) -> Hostile:
    """Paths and methods that are no verb."""
    method, path = draw(
        st.sampled_from(
            [
                ("GET", "/scheduler/filter"),
                ("POST", "/scheduler/evict"),
                ("POST", "/scheduler/" + "v" * 4000),
                ("DELETE", "/scheduler/bind"),
                ("GET", "/metrics"),
                ("GET", "/nothing"),
            ]
        )
    )
    return Hostile("stray", method, path, b"{}")


def hostile_requests() -> st.SearchStrategy[Hostile]:
    """Every kind, verbs most often (they reach the most code)."""
    return st.one_of(verbs(), verbs(), verbs(), verbs(), malformed(), oversized(), slow(), stray())
