"""The simulated kubelet: admission, model loads, out-of-memory crashes, Ready, and deletion.

Separate from the scheduler queue and the autoscaler because it is where the simulated truth
changes: which pod holds which GPU, and how many bytes a loading model has put in GPU memory.
Every change is announced to the policy (``node_changed``, ``pod_event``), which sees it only
through its own window (the agent's next report, the scheduler's cache).

* admission: the pod is given its GPUs ``admissionDelay`` after binding, as the kubelet and the
  stock NVIDIA device plugin give them: from the GPUs no pod holds, in a random (map) order,
  by the plugin's preferred allocation (``default_policy.device_plugin_gpus``). What the policy
  chose is a prediction the kubelet never reads; a pod given other GPUs is counted
  (``predictions_missed``). Its container starts ``containerStart`` later;
* load: the model server loads the weights from the node's disk when the model is cached
  there, else from remote storage, sharing that link with the node's other loads
  (``bandwidth``); then KV-cache allocation and warm-up (``initTime``), then Ready. A cold load
  that starts while the node's remote link has more left to move than ``loadBudget`` allows is
  counted (``budget_overruns``), whichever policy placed it;
* out of memory: the GPU memory a load needs is checked against what is really free on each of
  its GPUs (total, less driver and out-of-band memory). Weights that do not fit crash the
  server when the load reaches the free memory; weights that fit with a KV cache that does not
  crash it when the load completes. The kubelet restarts it after CrashLoopBackOff (10 s,
  doubling to 5 min) and the load starts again, on the same GPUs;
* deletion: the pod terminates for ``terminationGrace`` and keeps its GPUs until gone;
* multi-node replicas: each pod of a group loads its shard of the weights; the replica serves
  only when every pod has loaded and warmed up, so its pods become Ready together (a model
  server's readiness waits for its whole distributed group).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from simulator.bandwidth import SharedLink
from simulator.clock import Clock
from simulator.cluster import Node, Phase, SchedulerCache, SimPod, SimulationError
from simulator.default_policy import device_plugin_gpus
from simulator.scheduling import DELETED, GONE, READY, UPDATED, Policy
from simulator.settings import Settings
from simulator.tally import Tally


class Kubelet:
    """The kubelets of every node of one run (see the module docstring).

    ``requeue(kind)`` tells the scheduler queue about a pod event; ``forget_pending(pod)`` takes
    a deleted pod that was never bound out of its waiting pods; ``rng`` stands for the map
    order the kubelet lists free GPUs in.
    """

    def __init__(
        self,
        clock: Clock,
        settings: Settings,
        policy: Policy,
        cache: SchedulerCache,
        tally: Tally,
        *,
        requeue: Callable[[str], None],
        forget_pending: Callable[[SimPod], None],
        rng: random.Random,
    ) -> None:
        self.rng = rng
        self.clock = clock
        self.settings = settings
        self.policy = policy
        self.cache = cache
        self.tally = tally
        self.requeue = requeue
        self.forget_pending = forget_pending

    def admit(self, pod: SimPod) -> None:
        """Give the bound pod its GPUs and start its container."""
        node = pod.node
        assert node is not None
        count = pod.service.spec.gpus
        indices = self._device_plugin(node, count)
        if pod.chosen_gpus and {node.gpus[i].uuid for i in indices} != set(pod.chosen_gpus):
            self.tally.predictions_missed += 1
        for i in indices:
            if node.gpus[i].holder is not None:
                raise SimulationError(f"GPU {node.gpus[i].uuid} handed to two pods")
            node.gpus[i].holder = pod
        pod.gpus = indices
        self.policy.node_changed(node, self.clock.now)
        self.clock.after_pod(pod, self.settings.container_start_s, self._start_load)

    def _device_plugin(self, node: Node, count: int) -> tuple[int, ...]:
        try:
            return device_plugin_gpus(node, count, self.rng)
        except ValueError as exc:
            raise SimulationError(f"admission: {exc}") from None

    def _start_load(self, pod: SimPod) -> None:
        node = pod.node
        assert node is not None
        spec = pod.service.spec
        link = node.disk if spec.model_id in node.cached else node.remote
        room = min(node.gpus[i].total - node.gpus[i].reserved for i in pod.gpus)
        size = float(spec.pod_model_bytes)
        pod.oom_stage = ""
        pod.warm = False
        if spec.vram_per_gpu > room:
            self.tally.overcommitted += 1
            if not pod.overcommitted:
                pod.overcommitted = True
                self.tally.overcommitted_pods += 1
            if spec.weights_per_gpu > room:
                pod.oom_stage = "load"
                size = spec.pod_model_bytes * room / spec.weights_per_gpu
            else:
                pod.oom_stage = "init"
        pod.phase = Phase.LOADING
        pod.link = link
        generation = pod.generation
        if link is node.remote and self._over_budget(link, size):
            self.tally.budget_overruns += 1

        def done() -> None:
            if pod.generation == generation:
                self._loaded(pod)

        pod.transfer = link.start(size, done)
        self.tally.loads_started += 1
        node.loads += 1
        node.peak_loads = max(node.peak_loads, node.loads)
        node.loading.add(pod)
        self.tally.loads(+1, self.clock.now)
        self.policy.node_changed(node, self.clock.now)

    def _over_budget(self, link: SharedLink, size: float) -> bool:
        """Whether a cold load of ``size`` bytes starting now breaks the load budget, by the
        truth: another cold load is in flight on the node's link, and the bytes they all have
        left take longer than ``loadBudget`` at its bandwidth (``placement.loadbudget``)."""
        budget_s = self.settings.load_budget_s
        if budget_s <= 0 or not link.active:
            return False
        left = sum(t.size - link.moved(t) for t in link.active)
        return left + size > budget_s * link.bytes_per_s * (1 + 1e-9)

    def _end_load(self, pod: SimPod) -> None:
        node = pod.node
        assert node is not None
        node.loads -= 1
        node.loading.discard(pod)
        self.tally.loads(-1, self.clock.now)

    def _loaded(self, pod: SimPod) -> None:
        node = pod.node
        assert node is not None
        spec = pod.service.spec
        self._end_load(pod)
        from_remote = pod.link is node.remote
        pod.transfer = None
        if pod.oom_stage:
            s = self.settings
            self.tally.out_of_memory += 1
            pod.restarts += 1
            pod.phase = Phase.CRASHED
            self.policy.node_changed(node, self.clock.now)
            self.policy.pod_event(pod, UPDATED, self.clock.now)
            self.requeue(UPDATED)
            backoff = min(s.crash_backoff_max_s, s.crash_backoff_s * 2 ** min(pod.restarts - 1, 40))
            self.clock.after_pod(pod, backoff + s.container_start_s, self._start_load)
            return
        if from_remote and self.settings.cache_on_load and spec.model_id not in node.cached:
            node.cached[spec.model_id] = spec.model_bytes
        pod.phase = Phase.INITIALIZING
        self.policy.node_changed(node, self.clock.now)
        self.clock.after_pod(pod, spec.init_s, self._ready)

    def _ready(self, pod: SimPod) -> None:
        ready = [pod]
        if pod.group is not None:
            pod.warm = True
            ready = [m for m in pod.group.members if not m.deleted]
            if not all(m.warm for m in ready):
                return  # its group serves only once every member is warm
        for p in ready:
            p.phase = Phase.READY
            p.ready_at = self.clock.now
        self.tally.close_cold_start(pod.service, self.clock.now, completed=True)
        for p in ready:
            self.policy.pod_event(p, READY, self.clock.now)
        self.requeue(UPDATED)

    def delete(self, pod: SimPod) -> None:
        """Delete the pod: gone at once if it holds nothing yet, else after terminating."""
        pod.deleted = True
        pod.generation += 1
        if pod.phase is Phase.PENDING:
            self.forget_pending(pod)
            self._gone(pod)
            return
        node = pod.node
        assert node is not None
        if pod.phase is Phase.BINDING:
            self.cache.forget(node.idx, pod, terminated=False)
            self._gone(pod)
            return
        pod.frozen_bytes = pod.gpu_bytes()
        if pod.phase is Phase.LOADING and pod.transfer is not None and pod.link is not None:
            pod.link.cancel(pod.transfer)
            pod.transfer = None
            self._end_load(pod)
        pod.phase = Phase.TERMINATING
        pod.terminating_at = self.clock.now
        self.cache.terminating(node.idx, pod)
        self.policy.pod_event(pod, UPDATED, self.clock.now)
        self.requeue(UPDATED)
        self.clock.after(self.settings.termination_grace_s, lambda: self._terminated(pod))

    def _terminated(self, pod: SimPod) -> None:
        node = pod.node
        assert node is not None
        for i in pod.gpus:
            node.gpus[i].holder = None
        self.cache.forget(node.idx, pod, terminated=True)
        self.policy.node_changed(node, self.clock.now)
        self._gone(pod)
        self.requeue(DELETED)

    def _gone(self, pod: SimPod) -> None:
        pod.phase = Phase.GONE
        pod.gone_at = self.clock.now
        self.tally.group_changed(pod, self.clock.now)
        self.policy.pod_event(pod, GONE, self.clock.now)
        pod.service.pods.remove(pod)
