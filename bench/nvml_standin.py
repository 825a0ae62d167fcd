"""A stand-in for the NVIDIA driver's NVML library, so that the agent's NVML code path can be
measured on a machine without a GPU.

``install`` keeps the real ``pynvml`` module (nvidia-ml-py: its classes, constants, errors and
memory) and answers the calls the agent makes in Python, as an idle node of eight H100 80 GB
GPUs on NVSwitch would: every GPU listed, its memory (info v2), one process on each, health
counters, eighteen active NVLinks to the switch, MIG off, and an XID event wait that times out.
Only ``libnvidia-ml.so`` itself is not loaded: on a real GPU node the agent holds that
library's pages too.

``python -m bench.nvml_standin ARGS`` runs the real ``vramfit-agent ARGS`` with it.
"""

from __future__ import annotations

import os
import sys
import time
import types
from typing import Any

GIB = 1024**3
GPUS = 8
LINKS = 18  # NVLinks of an H100 SXM
_NVLINK_SWITCH = 2
_FEATURE_DISABLED = 0


def install(pynvml: types.ModuleType, gpus: int = GPUS) -> None:
    """Answer ``pynvml``'s NVML calls as a node of ``gpus`` H100 GPUs would."""
    error = pynvml.NVMLError
    pid = os.getpid()

    def uuid(i: int) -> str:
        return f"GPU-{i:08x}-0000-4000-8000-00000000abcd"

    def bus(i: int) -> bytes:
        return f"00000000:{0x18 + 0x10 * i:02X}:00.0".encode()

    def gpu(h: Any) -> int:
        return int(h)

    def memory(h: Any, version: int | None = None) -> Any:
        used, reserved = 40 * GIB + gpu(h) * GIB, 512 * 1024**2
        total = 80 * GIB
        if version is None:
            return types.SimpleNamespace(total=total, free=total - used - reserved, used=used)
        return types.SimpleNamespace(
            total=total, free=total - used - reserved, used=used, reserved=reserved
        )

    def processes(h: Any) -> list[Any]:
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=(40 + gpu(h)) * GIB)]

    def nvlink_state(h: Any, link: int) -> int:
        if link >= LINKS:
            raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return 1

    def event_wait(event_set: Any, ms: int) -> Any:
        time.sleep(ms / 1000)
        raise error(pynvml.NVML_ERROR_TIMEOUT)

    def not_supported(*_: Any) -> Any:
        raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    answers: dict[str, Any] = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlSystemGetDriverVersion": lambda: "570.86.15",
        "nvmlDeviceGetCount": lambda: gpus,
        "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetUUID": lambda h: uuid(gpu(h)),
        "nvmlDeviceGetIndex": gpu,
        "nvmlDeviceGetMinorNumber": gpu,  # /dev/nvidia<minor>: the index on an idle node
        "nvmlDeviceGetName": lambda h: "NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(busId=bus(gpu(h))),
        "nvmlDeviceGetNumaNodeId": lambda h: gpu(h) // 4,
        "nvmlDeviceGetMemoryInfo": memory,
        "nvmlDeviceGetMigMode": lambda h: [0, 0],
        "nvmlDeviceGetMaxMigDeviceCount": lambda h: 7,
        "nvmlDeviceGetMigDeviceHandleByIndex": not_supported,
        "nvmlDeviceGetComputeRunningProcesses": processes,
        "nvmlDeviceGetComputeRunningProcesses_v2": processes,
        "nvmlDeviceGetRemappedRows": lambda h: (0, 0, 0, 0),
        "nvmlDeviceGetRetiredPagesPendingStatus": lambda h: _FEATURE_DISABLED,
        "nvmlDeviceGetTotalEccErrors": lambda h, error_type, counter: 0,
        "nvmlDeviceGetNvLinkState": nvlink_state,
        "nvmlDeviceGetNvLinkRemotePciInfo": lambda h, link: types.SimpleNamespace(
            busId=b"00000000:A0:00.0"
        ),
        "nvmlDeviceGetNvLinkRemoteDeviceType": lambda h, link: _NVLINK_SWITCH,
        "nvmlDeviceGetP2PStatus": not_supported,
        "nvmlEventSetCreate": object,
        "nvmlDeviceGetSupportedEventTypes": lambda h: pynvml.nvmlEventTypeXidCriticalError,
        "nvmlDeviceRegisterEvents": lambda h, types_, event_set: None,
        "nvmlEventSetWait_v2": event_wait,
        "nvmlEventSetFree": lambda event_set: None,
    }
    for name, fn in answers.items():
        setattr(pynvml, name, fn)


def main() -> int:
    """Run ``vramfit-agent`` with the real ``pynvml`` answering through ``install``."""
    import pynvml  # noqa: PLC0415 - the real bindings, their memory counted

    from nodeagent.cli import main as agent_main  # noqa: PLC0415

    install(pynvml)
    return agent_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
