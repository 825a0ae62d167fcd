"""A real Kubernetes control plane (etcd, kube-apiserver, kube-scheduler) built from pinned Go
modules and run as local processes, for the tests and for `make cluster`."""
