"""One GPU node shape: what a node of a pool looks like, and the labels GPU Feature Discovery
would give it.

The planner's pool types, the simulator's node types, the simulated agent's node spec and the
test control plane's fake nodes all describe the same thing: a GPU product, a GPU count, VRAM per
GPU, which GPUs NVLink joins, and how fast weights load from local disk and from remote storage.
``NodeShape`` is that description, once; ``parse_nvlink`` is the one reader of the ``nvlink``
field all their files share. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from placement.fields import FieldError, Fields, InputError, Problem, quote

Islands = tuple[tuple[int, ...], ...]
"""NVLink islands as GPU indices: each GPU in exactly one island, each island sorted."""

MIB = 1024**2


@dataclass(frozen=True, slots=True)
class NvLink:
    """Which GPUs of a node NVLink joins.

    ``islands`` partitions the GPU indices (a GPU joined to none is an island of one), sorted by
    their lowest GPU. ``all_to_all`` is an NVSwitch node: every GPU reaches every other.
    """

    islands: Islands
    all_to_all: bool = False

    @classmethod
    def all(cls, gpus: int) -> NvLink:
        """An NVSwitch node: one island of all ``gpus`` GPUs."""
        return cls((tuple(range(gpus)),) if gpus > 0 else (), all_to_all=True)

    @classmethod
    def none(cls, gpus: int) -> NvLink:
        """No NVLink: every GPU an island of one."""
        return cls(tuple((i,) for i in range(gpus)))

    @classmethod
    def of(cls, islands: Islands, gpus: int) -> NvLink:
        """The given islands, GPUs left out of them as islands of one, in the canonical order.

        Raises ``ValueError`` when an index is out of ``0..gpus-1`` or listed twice: this is for
        islands a program built; ``parse_nvlink`` reads them from a file.
        """
        seen: set[int] = set()
        out: list[tuple[int, ...]] = []
        for island in islands:
            for gpu in island:
                if not 0 <= gpu < gpus or gpu in seen:
                    raise ValueError(f"NVLink islands {islands!r}: bad GPU index {gpu}")
                seen.add(gpu)
            if island:
                out.append(tuple(sorted(island)))
        out.extend((i,) for i in range(gpus) if i not in seen)
        return cls(tuple(sorted(out)))

    @property
    def mode(self) -> Literal["all", "none", "islands"]:
        """``all`` (NVSwitch), ``none`` (no GPU joined to another) or ``islands``."""
        if self.all_to_all:
            return "all"
        if all(len(i) == 1 for i in self.islands):
            return "none"
        return "islands"

    @property
    def largest(self) -> int:
        """GPUs in the largest island (1 for a node without NVLink)."""
        return max((len(i) for i in self.islands), default=1)

    @property
    def linked(self) -> Islands:
        """The islands of more than one GPU (the islands of one left out)."""
        return tuple(i for i in self.islands if len(i) > 1)


@dataclass(frozen=True, slots=True)
class NodeShape:
    """The shape of a GPU node: product, GPU count, VRAM per GPU, NVLink and load bandwidths.

    ``product`` is the name as NVML or the label writes it (``NVIDIA-H100-80GB-HBM3``).
    Bandwidths are bytes per second, ``None`` where unknown. Construction checks the shape is
    consistent (``ValueError`` otherwise): at least one GPU, VRAM not negative, islands that
    cover each GPU exactly once.
    """

    product: str
    gpus: int
    vram_per_gpu: int
    nvlink: NvLink
    local_disk_bytes_per_s: float | None = None
    remote_bytes_per_s: float | None = None

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError(f"a GPU node has at least one GPU, not {self.gpus}")
        if self.vram_per_gpu < 0:
            raise ValueError(f"VRAM per GPU must not be negative, not {self.vram_per_gpu}")
        if sorted(g for i in self.nvlink.islands for g in i) != list(range(self.gpus)):
            raise ValueError(
                f"NVLink islands {self.nvlink.islands!r} must list each of {self.gpus} GPUs once"
            )
        for rate in (self.local_disk_bytes_per_s, self.remote_bytes_per_s):
            if rate is not None and not rate > 0:
                raise ValueError(f"a load bandwidth must be above zero, not {rate}")

    @property
    def islands(self) -> Islands:
        """The NVLink islands (every GPU in one)."""
        return self.nvlink.islands

    def gfd_labels(self) -> dict[str, str]:
        """The node labels NVIDIA GPU Feature Discovery derives from this shape.

        Per NVIDIA/k8s-device-plugin v0.20.0 (``docs/gpu-feature-discovery/README.md`` and
        ``internal/lm/resource.go``): ``nvidia.com/gpu.product`` is the NVML name cleaned as
        GFD cleans it (``gfd_product``), ``nvidia.com/gpu.memory`` is MiB (left out when 0, as
        GFD does), ``nvidia.com/gpu.count`` the GPU count. Where the product names a GPU whose
        compute capability is public, ``gpu.family`` and ``gpu.compute.major``/``.minor``
        follow from it (GFD reads them from the device). Real GFD reports NVML's total memory,
        a little under the nominal size: match ``gpu.memory`` by threshold.
        """
        labels = {
            "nvidia.com/gpu.product": gfd_product(self.product),
            "nvidia.com/gpu.count": str(self.gpus),
        }
        if self.vram_per_gpu // MIB > 0:
            labels["nvidia.com/gpu.memory"] = str(self.vram_per_gpu // MIB)
        capability = compute_capability(self.product)
        if capability is not None:
            major, minor = capability
            labels["nvidia.com/gpu.compute.major"] = str(major)
            labels["nvidia.com/gpu.compute.minor"] = str(minor)
            family = _family(major, minor)
            if family:
                labels["nvidia.com/gpu.family"] = family
        return labels


_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9\-_. ]")


def gfd_product(name: str) -> str:
    """A GPU product name as GFD writes ``nvidia.com/gpu.product`` (pure): characters other
    than ``A-Za-z0-9-_.`` and space removed, then each space made ``-``
    ("NVIDIA H100 80GB HBM3" -> "NVIDIA-H100-80GB-HBM3")."""
    return _NOT_IN_LABEL.sub("", name).replace(" ", "-")


# Compute capability by GPU model (NVIDIA's CUDA GPUs table), for the GFD labels that follow.
_CAPABILITY: dict[str, tuple[int, int]] = {
    "V100": (7, 0),
    "T4": (7, 5),
    "A100": (8, 0),
    "A30": (8, 0),
    "A10": (8, 6),
    "A10G": (8, 6),
    "A40": (8, 6),
    "L4": (8, 9),
    "L40": (8, 9),
    "L40S": (8, 9),
    "H100": (9, 0),
    "H200": (9, 0),
    "H800": (9, 0),
    "GH200": (9, 0),
    "B200": (10, 0),
    "GB200": (10, 0),
}


def compute_capability(product: str) -> tuple[int, int] | None:
    """The compute capability of the GPU model ``product`` names, when known (pure)."""
    for token in re.split(r"[-_ .]+", product.upper()):
        if token in _CAPABILITY:
            return _CAPABILITY[token]
    return None


def _family(major: int, minor: int) -> str:
    """GFD's ``gpu.family`` for a compute capability ("" where GFD's table has none here)."""
    if major == 7:
        return "turing" if minor >= 5 else "volta"
    if major == 8:
        return "ada-lovelace" if minor == 9 else "ampere"
    return {9: "hopper", 10: "blackwell", 12: "blackwell", 13: "rubin"}.get(major, "")


_FORMS = "all, none or islands such as {islands: [[0,1],[2,3]]}"


def parse_nvlink(
    raw: object, gpus: int, where: str, problems: list[Problem] | None = None
) -> NvLink:
    """The ``nvlink`` field of a node, pool or node type, read one way everywhere (pure).

    Forms: ``all`` or ``true`` (NVSwitch, one island); ``none``, ``false`` or absent (``None``:
    no NVLink); ``{islands: [[0,1],[2,3]]}`` or the bare list ``[[0,1],[2,3]]``. The rule for
    islands: each entry is a non-empty list of GPU indices in ``0..gpus-1``; a GPU listed twice
    (in one island or two) is rejected, and so is an index out of range; **a GPU not listed is
    an island of one** (joined to no other). Islands come back sorted.

    Problems are appended to ``problems`` under ``where`` (the field's full path) and the node
    reads as ``none``; without a list, they are raised (``FieldError`` for one, ``InputError``
    for several). A ``gpus`` below 1 reads as no islands, with no problem: the count's own
    problem is reported where it is read.
    """
    found: list[Problem] = []
    result = _nvlink(raw, gpus, where, found)
    if found:
        if problems is not None:
            problems.extend(found)
        elif len(found) == 1:
            raise FieldError(found[0].where, found[0].message)
        else:
            raise InputError("", found)
        return NvLink.none(max(gpus, 0))
    return result


def read_nvlink(f: Fields, key: str, gpus: int, default: NvLink | None = None) -> NvLink:
    """``parse_nvlink`` of ``f``'s field ``key``; ``default`` (or ``none``) when it is absent."""
    if not f.has(key):
        return default if default is not None else NvLink.none(max(gpus, 0))
    return parse_nvlink(f.get(key), gpus, f.where(key), f.problems)


def _nvlink(raw: object, gpus: int, where: str, problems: list[Problem]) -> NvLink:
    if gpus < 1:
        return NvLink(())
    if raw is None or raw is False or raw == "none":
        return NvLink.none(gpus)
    if raw is True or raw == "all":
        return NvLink.all(gpus)
    listed = raw
    path = where
    if isinstance(raw, Mapping) and set(raw) == {"islands"}:
        listed = raw["islands"]
        path = f"{where}.islands"
    if not isinstance(listed, list) or not all(isinstance(i, list) for i in listed):
        problems.append(Problem(where, f"expected {_FORMS}, got {quote(raw)}"))
        return NvLink.none(gpus)
    seen: dict[int, int] = {}
    islands: list[tuple[int, ...]] = []
    for n, island in enumerate(listed):
        if not island:
            problems.append(Problem(f"{path}[{n}]", "an island lists no GPU"))
            continue
        for gpu in island:
            if isinstance(gpu, bool) or not isinstance(gpu, int) or not 0 <= gpu < gpus:
                problems.append(
                    Problem(f"{path}[{n}]", f"{quote(gpu)} is not a GPU index 0..{gpus - 1}")
                )
            elif gpu in seen:
                again = (
                    "twice in this island" if seen[gpu] == n else f"again (in island {seen[gpu]})"
                )
                problems.append(Problem(f"{path}[{n}]", f"GPU {gpu} is listed {again}"))
            else:
                seen[gpu] = n
        islands.append(tuple(g for g in island if isinstance(g, int)))
    if problems:
        return NvLink.none(gpus)
    return NvLink.of(tuple(islands), gpus)
