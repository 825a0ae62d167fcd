"""Replica targets from traffic: exact for a burst, invariants for any pattern."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.scenario import Service, Traffic
from simulator.settings import Settings
from simulator.traffic import compile_service

GIB = 1024**3


def service(traffic: Traffic, **kw: object) -> Service:
    base = Service(
        name="s", model_id="m", model_bytes=8 * GIB, gpus=1, vram_per_gpu=10 * GIB, traffic=traffic
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


BURST = Traffic("burst", rate=3.0, start=(10.0, 10.0), duration_s=20.0)


@pytest.mark.parametrize(
    ("svc", "targets", "cold"),
    [
        # Busy from the first request at 10 until 300 s (scaleToZeroAfter) after the last at
        # 30; three replicas until the stable window (60 s) has seen no traffic, then one.
        pytest.param(
            service(BURST), ((0.0, 0), (10.0, 3), (90.0, 1), (330.0, 0)), (10.0,), id="burst"
        ),
        pytest.param(
            service(BURST, min_replicas=1), ((0.0, 1), (10.0, 3), (90.0, 1)), (), id="min-replicas"
        ),
        pytest.param(
            service(BURST, max_replicas=2),
            ((0.0, 0), (10.0, 2), (90.0, 1), (330.0, 0)),
            (10.0,),
            id="max-replicas",
        ),
        pytest.param(
            service(BURST, capacity=2.0),
            ((0.0, 0), (10.0, 2), (90.0, 1), (330.0, 0)),
            (10.0,),
            id="capacity",
        ),
        pytest.param(
            service(BURST, scale_to_zero_after_s=50.0),
            ((0.0, 0), (10.0, 3), (80.0, 0)),
            (10.0,),
            id="short-idle-window",
        ),
    ],
)
def test_burst_targets(
    svc: Service, targets: tuple[tuple[float, int], ...], cold: tuple[float, ...]
) -> None:
    plan = compile_service(svc, 1000.0, Settings(), seed=1)
    assert plan.targets == targets
    assert plan.cold_starts == cold


traffics = st.one_of(
    st.builds(
        Traffic,
        pattern=st.just("burst"),
        rate=st.floats(0.0001, 20),
        start=st.tuples(st.floats(0, 500), st.floats(0, 500)).map(lambda t: (min(t), max(t))),
        duration_s=st.none() | st.floats(1, 3000),
    ),
    st.builds(
        Traffic,
        pattern=st.just("onoff"),
        rate=st.floats(0.0001, 20),
        on_mean_s=st.floats(10, 3000),
        off_mean_s=st.floats(10, 3000),
    ),
    st.builds(
        Traffic,
        pattern=st.just("diurnal"),
        rate=st.floats(0.001, 20),
        trough=st.floats(0, 0.001),
        period_s=st.floats(600, 86400),
        peak_at_s=st.floats(0, 86400),
    ),
    st.builds(Traffic, pattern=st.just("constant"), rate=st.floats(0.0001, 20)),
)


@settings(max_examples=60, deadline=None)
@given(
    traffic=traffics,
    lo=st.integers(0, 2),
    extra=st.integers(0, 4),
    idle=st.floats(1, 1200),
    delay=st.floats(0, 300),
    seed=st.integers(0, 2**32),
)
def test_targets_are_well_formed(
    *, traffic: Traffic, lo: int, extra: int, idle: float, delay: float, seed: int
) -> None:
    svc = service(
        traffic, min_replicas=lo, max_replicas=max(1, lo + extra), scale_to_zero_after_s=idle
    )
    s = Settings(scale_down_delay_s=delay)
    plan = compile_service(svc, 7200.0, s, seed)
    times = [t for t, _ in plan.targets]
    values = [v for _, v in plan.targets]
    assert times[0] == 0.0
    assert times == sorted(set(times))
    assert all(t < 7200.0 for t in times)
    assert all(lo <= v <= svc.max_replicas for v in values)
    assert all(a != b for a, b in itertools.pairwise(values))
    at = dict(plan.targets)
    for c in plan.cold_starts:
        before = [v for t, v in plan.targets if t < c]
        assert at[c] >= 1 and (not before or before[-1] == 0)
    if lo >= 1:
        assert plan.cold_starts == ()
    assert compile_service(svc, 7200.0, s, seed) == plan
