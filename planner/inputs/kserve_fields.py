"""The fields KServe's v1beta1 InferenceService and the Kubernetes pod spec define.

The reader checks each object against these sets so that a misspelt or unsupported field is
named with its path rather than silently ignored. They are the schema vramfit knows, kept
apart from the reading so that a new KServe field is one line here.
"""

from __future__ import annotations

LEGACY_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)

OBJECT_META = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "generateName",
        "selfLink",
    }
)
PODSPEC = frozenset(
    {
        "containers",
        "initContainers",
        "ephemeralContainers",
        "volumes",
        "nodeSelector",
        "affinity",
        "tolerations",
        "serviceAccountName",
        "serviceAccount",
        "automountServiceAccountToken",
        "imagePullSecrets",
        "priorityClassName",
        "priority",
        "preemptionPolicy",
        "schedulerName",
        "securityContext",
        "hostNetwork",
        "hostIPC",
        "hostPID",
        "hostUsers",
        "nodeName",
        "runtimeClassName",
        "dnsPolicy",
        "dnsConfig",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "enableServiceLinks",
        "hostAliases",
        "hostname",
        "subdomain",
        "overhead",
        "readinessGates",
        "shareProcessNamespace",
        "topologySpreadConstraints",
        "setHostnameAsFQDN",
        "os",
        "schedulingGates",
        "resourceClaims",
        "resources",
    }
)
COMPONENT_EXTENSION = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
    }
)
CONTAINER = frozenset(
    {
        "name",
        "image",
        "command",
        "args",
        "workingDir",
        "ports",
        "envFrom",
        "env",
        "resources",
        "resizePolicy",
        "restartPolicy",
        "volumeMounts",
        "volumeDevices",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "imagePullPolicy",
        "securityContext",
        "stdin",
        "stdinOnce",
        "tty",
    }
)
PREDICTOR_EXTENSION = CONTAINER | {
    "storageUri",
    "storageUris",
    "runtimeVersion",
    "protocolVersion",
    "storage",
}
MODEL = PREDICTOR_EXTENSION | {"modelFormat", "runtime"}
PREDICTOR = PODSPEC | COMPONENT_EXTENSION | {"model", "workerSpec", *LEGACY_FRAMEWORKS}
TRANSFORMER = PODSPEC | COMPONENT_EXTENSION
EXPLAINER = PODSPEC | COMPONENT_EXTENSION | {"art"}
WORKER = PODSPEC | {"tensorParallelSize", "pipelineParallelSize"}
SPEC = frozenset({"predictor", "transformer", "explainer", "canary"})
TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
COMPONENTS = {"predictor": PREDICTOR, "transformer": TRANSFORMER, "explainer": EXPLAINER}
