"""Which pod a process belongs to, from ``/proc/<pid>/cgroup``.

NVML reports GPU memory per host PID; the kubelet puts every container in a cgroup whose path
carries the pod UID. The path depends on the cgroup version (v1 lists one line per controller,
v2 one ``0::`` line) and on the kubelet's cgroup driver (cgroupfs writes ``pod<uid>`` with
dashes, systemd writes ``kubepods-<qos>-pod<uid>.slice`` with underscores). Nested setups (a
node inside a container) prefix the path; all of these are handled by looking for the kubepods
segment anywhere in the path. Needs ``hostPID`` so that NVML's PIDs are visible in ``/proc``.
"""

from __future__ import annotations

import re
from pathlib import Path

_UUID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_HASH = r"[0-9a-fA-F]{32}"  # static (mirror) pods have a hash, not a UUID, as their UID
_POD_SEGMENT = re.compile(
    rf"(?:^|/)(?:kubepods(?:-[a-z]+)?-)?pod(?:(?P<uuid>{_UUID})|(?P<hash>{_HASH}))"
    r"(?:\.slice)?(?=$|[/:])"
)


def pod_uid_from_path(path: str) -> str | None:
    """The pod UID in one cgroup path, or ``None`` when the path is not a pod's (pure).

    A ``pod<uuid>`` segment is enough (a reader in its own cgroup namespace sees paths relative
    to its own cgroup, such as ``/../../pod<uid>/<container>``); the hash form of static pods
    counts only under a ``kubepods`` path.
    """
    for m in _POD_SEGMENT.finditer(path):
        if m.group("uuid"):
            return m.group("uuid").replace("_", "-").lower()
        if "kubepods" in path[: m.end()]:
            return m.group("hash").lower()
    return None


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in the contents of ``/proc/<pid>/cgroup``, or ``None`` (pure).

    The unified (v2) line wins; on v1 the first controller line that names a pod does.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    unified = [line for line in lines if line.startswith("0::")]
    for line in unified + [line for line in lines if not line.startswith("0::")]:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        uid = pod_uid_from_path(parts[2])
        if uid is not None:
            return uid
    return None


class CgroupResolver:
    """Maps host PIDs to pod UIDs by reading ``<proc_root>/<pid>/cgroup``."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self._root = proc_root

    def pod_of(self, pid: int) -> str | None:
        """The pod UID of ``pid``; ``None`` for a process outside any pod or already gone."""
        try:
            text = (self._root / str(pid) / "cgroup").read_text(errors="replace")
        except OSError:  # gone, not visible (no hostPID) or not readable
            return None
        return pod_uid_from_cgroup(text)
