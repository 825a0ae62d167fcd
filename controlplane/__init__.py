"""A real Kubernetes control plane (etcd, kube-apiserver, kube-scheduler) built from pinned Go
modules and run as local processes, for the tests and for `make cluster`.

- ``binaries``: find the binaries (``KUBEBUILDER_ASSETS``, ``TEST_ASSET_<NAME>``) or build them
  into a version-keyed cache from ``tools/k8sbins`` and ``tools/etcdbin``;
- ``harness``: ``ControlPlane`` starts, watches and always stops the processes;
- ``pytest_plugin``: the fixtures ``control_plane``, ``namespace``, ``start_scheduler``,
  ``make_gpu_nodes``;
- ``nodes`` / ``nodespec``: fake GPU Node objects, from the simulated node spec;
- ``manifests``: read and server-side apply ``deploy/``;
- ``cluster``: ``make cluster`` / ``make cluster-down``.

Product code never imports this package (an import-linter contract).
"""
