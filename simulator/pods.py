"""The predictor pod KServe would create for a service, and the demand vramfit reads from it.

The simulator does not hand policies a ``Demand`` it builds itself: it writes the pod JSON with
vramfit's annotations, as the admission webhook would leave it, and reads the demand back with
the extender's own ``placement.demand.demand_from_pod``, so a service's annotations mean in a
simulation what they mean in a cluster.
"""

from __future__ import annotations

from typing import Any

from placement.demand import (
    A_GPU_PRODUCT,
    A_MODEL,
    A_MODEL_SIZE,
    A_NVLINK,
    A_POLICY,
    A_VRAM_PER_GPU,
    GPU_RESOURCE,
    demand_from_pod,
)
from placement.model import Demand
from simulator.cluster import SimulationError
from simulator.scenario import Service


def pod_json(service: Service) -> dict[str, Any]:
    """The predictor pod KServe would create for ``service``, with vramfit's annotations."""
    annotations = {
        A_VRAM_PER_GPU: str(service.vram_per_gpu),
        A_MODEL: service.model_id,
        A_MODEL_SIZE: str(service.model_bytes),
        A_NVLINK: service.nvlink.value,
    }
    if service.products:
        annotations[A_GPU_PRODUCT] = ",".join(service.products)
    if service.policy:
        annotations[A_POLICY] = service.policy
    return {
        "metadata": {"name": service.name, "namespace": "serving", "annotations": annotations},
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "resources": {
                        "requests": {
                            GPU_RESOURCE: str(service.gpus),
                            "cpu": f"{service.cpu_milli}m",
                            "memory": str(service.memory_bytes),
                        },
                        "limits": {GPU_RESOURCE: str(service.gpus)},
                    },
                }
            ]
        },
    }


def service_demand(service: Service) -> Demand:
    """The demand the extender reads from the service's pod."""
    demand = demand_from_pod(pod_json(service))
    if demand is None:
        raise SimulationError(f"service {service.name}: its pod asks for no GPU")
    return demand
