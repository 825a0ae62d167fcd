"""The NVML backend: what the agent reads of a real GPU node, through ``nvidia-ml-py``.

``backend`` owns NVML's life and error policy; ``device`` reads one GPU per poll, ``nvlink``
finds the NVLink islands, ``xid`` records critical XID events, and ``calls`` maps every NVML
failure to what the agent does about it.
"""
