"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) built from pinned Go modules and run as local processes, for the tests and for
`make cluster`; also helm and Karpenter's kwok provider, built the same way.

- ``binaries``: find the binaries (``KUBEBUILDER_ASSETS``, ``TEST_ASSET_<NAME>``) or build them
  into a version-keyed cache from ``tools/k8sbins`` and ``tools/etcdbin``; ``helm`` and
  ``karpenterbin`` do the same for ``tools/helmbin`` and ``tools/karpenterbin``;
- ``harness``: ``ControlPlane`` starts, watches and always stops the processes, on
  ``supervisor`` (processes, ports, logs), ``access`` (clients, identities), ``configuration``
  (pure command lines and configurations), ``credentials``, ``etcd`` and ``lifetime`` (exit and
  signal hooks); ``identities`` issues service-account and kubelet credentials;
- ``pytest_plugin``: the fixtures ``control_plane``, ``namespace``, ``start_scheduler``,
  ``make_gpu_nodes`` and the one ``wait_for``;
- ``nodes`` / ``nodespec``: fake GPU Node objects, from the simulated node spec;
- ``manifests``: read and server-side apply ``deploy/``;
- ``karpenter``: Karpenter with its kwok provider, and an agent for every node it creates;
- ``cluster``: ``make cluster`` / ``make cluster-down``.

Product code never imports this package (an import-linter contract).
"""
