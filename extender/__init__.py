"""vramfit-extender: the kube-scheduler extender webhook that places GPU pods by free VRAM,
NVLink islands, loads in flight and cached weights, so concurrent model loads never fight."""
