"""The fields of KServe's LLMInferenceService and LLMInferenceServiceConfig the reader knows.

From ``kserve/kserve pkg/apis/serving/v1alpha2/llm_inference_service_types.go`` (and
``v1alpha1``, which adds ``model.criticality``; both versions are served, ``v1alpha2`` is
stored). A field outside these sets is a note naming its path, not a problem; the router,
tracing, storage initializer, LoRA and KV-cache offloading sections are known but not read,
since they ask for no GPU.
"""

from __future__ import annotations

from planner.inputs.kserve_fields import PODSPEC

LLM_GROUP = "serving.kserve.io"
LLM_VERSIONS = ("v1alpha2", "v1alpha1")
"""The versions KServe serves, the stored one first (the one a live cluster is asked for)."""
LLM_KIND = "LLMInferenceService"
LLM_CONFIG_KIND = "LLMInferenceServiceConfig"
LLM_PLURAL = "llminferenceservices"
LLM_CONFIG_PLURAL = "llminferenceserviceconfigs"

WORKLOAD = frozenset(
    {
        "replicas",
        "scaling",
        "parallelism",
        "labels",
        "annotations",
        "template",
        "worker",
        "kvCacheOffloading",
        "rolloutStrategy",
    }
)
SPEC = WORKLOAD | {
    "model",
    "storageInitializer",
    "router",
    "prefill",
    "tracing",
    "baseRefs",
}
MODEL = frozenset({"uri", "name", "lora", "confidential", "criticality"})
PARALLELISM = frozenset({"tensor", "pipeline", "data", "dataLocal", "dataRPCPort", "expert"})
SCALING = frozenset({"minReplicas", "maxReplicas", "wva", "keda"})
WVA = frozenset({"variantCost", "hpa", "keda"})
KEDA = frozenset(
    {
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "idleReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
)
BASE_REF = frozenset({"name"})
POD = PODSPEC
