"""``/proc/<pid>/cgroup`` to pod UID on the layouts real nodes produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.cgroup import CgroupResolver, pod_uid_from_cgroup

UID = "0f3b5a2c-1234-4567-89ab-0123456789ab"
UND = UID.replace("-", "_")
CID = "5e2a0c4e1b2f3d4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a"

CASES = [
    pytest.param(
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UND}.slice/"
        f"cri-containerd-{CID}.scope\n",
        UID,
        id="v2-systemd-containerd-burstable",
    ),
    pytest.param(
        f"0::/kubepods.slice/kubepods-pod{UND}.slice/crio-{CID}.scope\n",
        UID,
        id="v2-systemd-crio-guaranteed",
    ),
    pytest.param(f"0::/kubepods/besteffort/pod{UID}/{CID}\n", UID, id="v2-cgroupfs-besteffort"),
    pytest.param(
        "12:hugetlb:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "11:memory:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "10:devices:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "1:name=systemd:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "0::/\n",
        UID,
        id="v1-cgroupfs-hybrid-with-empty-unified",
    ),
    pytest.param(
        f"11:devices:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UND}.slice/"
        f"docker-{CID}.scope\n4:memory:/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{UND}.slice/docker-{CID}.scope\n",
        UID,
        id="v1-systemd-docker",
    ),
    pytest.param(
        f"0::/system.slice/containerd.service/kubepods-burstable-pod{UND}.slice:cri-containerd:{CID}\n",
        UID,
        id="containerd-systemd-colon-form",
    ),
    pytest.param(
        f"0::/../../kubepods-burstable-pod{UND}.slice/cri-containerd-{CID}.scope\n",
        UID,
        id="v2-seen-from-another-cgroup-namespace",
    ),
    pytest.param(f"0::/../../pod{UID}/{CID}\n", UID, id="v2-cgroupfs-relative-sibling-pod"),
    pytest.param(
        f"0::/docker/{CID}/kubepods/burstable/pod{UID}/{CID}\n", UID, id="kind-node-in-docker"
    ),
    pytest.param(
        "0::/kubepods/burstable/pod6b2c4f0a8a4d4f0b9c1d2e3f4a5b6c7d/" + CID + "\n",
        "6b2c4f0a8a4d4f0b9c1d2e3f4a5b6c7d",
        id="static-pod-hash-uid",
    ),
    pytest.param(f"0::/kubepods/burstable/pod{UID.upper()}/{CID}\n", UID, id="upper-case"),
    pytest.param("0::/system.slice/nvidia-persistenced.service\n", None, id="host-daemon"),
    pytest.param("0::/user.slice/user-1000.slice/session-3.scope\n", None, id="login-session"),
    pytest.param("0::/\n", None, id="root"),
    pytest.param(
        "0::/podcast/pod6b2c4f0a8a4d4f0b9c1d2e3f4a5b6c7d\n", None, id="hash-outside-kubepods"
    ),
    pytest.param("", None, id="empty"),
    pytest.param("garbage without colons\n", None, id="malformed"),
]


@pytest.mark.parametrize(("text", "uid"), CASES)
def test_pod_uid_from_cgroup(text: str, uid: str | None) -> None:
    assert pod_uid_from_cgroup(text) == uid


def test_resolver_reads_proc_and_tolerates_gone_processes(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(f"0::/kubepods/burstable/pod{UID}/{CID}\n")
    resolver = CgroupResolver(tmp_path)
    assert resolver.pod_of(42) == UID
    assert resolver.pod_of(43) is None  # exited between NVML's list and our read
