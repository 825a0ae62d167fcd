"""vramfit's mutating admission webhook: GPU pods say what they need where autoscalers can read it.

Autoscalers simulate scheduling without extenders, so a pod vramfit would refuse on a 40 GB GPU
looks schedulable to them. This webhook fills the pod's absent ``vramfit.io/*`` annotations from
what KServe put on it and the model catalog, and adds required node affinity on GPU Feature
Discovery labels for the static part of the demand (``placement.derive``), which every autoscaler
evaluates.

Why a component of its own (``vramfit-admission``, its own Deployment and TLS listener) and not
part of the extender's process: the extender runs as a sidecar of a leader-elected scheduler,
listening on loopback only, and only the leader's copy is called; an admission webhook is called
by every API server for every GPU pod created, must be reachable through a Service over TLS, and
sits on the path of pod creation, so it is sized and scaled for that (several replicas, all
serving), has its own certificate lifecycle, and needs none of the extender's watches. Keeping it
apart also keeps a webhook outage from touching scheduling and a scheduler restart from touching
pod creation. Like the other components it imports only the core and the document loader.
"""
