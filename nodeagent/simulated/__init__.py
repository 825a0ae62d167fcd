"""The ``simulated`` backend: GPU nodes from a YAML spec, with a kubelet stand-in that gives
pods GPUs and loads their weights. It backs the local cluster, the demos and end-to-end tests."""
