"""vramfit-agent: the per-node DaemonSet that reports what each GPU node really has (NVML or a
simulated spec) as a NodeGPUState object, a Lease heartbeat and Prometheus metrics."""
