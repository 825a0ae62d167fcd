"""Fixtures of the end-to-end tests, shared by every module here (see ``world``).

One pool of 4 H100 and 4 A100 nodes with their agents, one extender and one vramfit
kube-scheduler serve the whole package; the stock default scheduler runs beside them (it
places the agent DaemonSet's pods and the comparison's pods). The fault tests record their
trials in ``fault_records``; the records are printed as a table at the end of the run and
written to ``$VRAMFIT_FAULTS_JSON`` when that is set (``make soak``).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controlplane.harness import ControlPlane, SchedulerProcess
from tests.e2e.bursts import Cluster
from tests.e2e.faults import JSON_ENV, TRIALS_ENV, FaultRecord, table, trial_counts, write_json
from tests.e2e.world import (
    SCHEDULER_SA,
    SYSTEM,
    Extender,
    Pool,
    api_clients,
    apply_deploy,
    make_pool,
    shipped_scheduler_config,
    start_extender,
)

_RECORDS: dict[str, FaultRecord] = {}


@pytest.fixture(scope="package")
def deployed(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """deploy/ applied, and the stock default scheduler running (as any cluster has it)."""
    apply_deploy(control_plane)
    default = control_plane.start_scheduler({}, name="scheduler-default-e2e")
    yield control_plane
    default.stop()


@pytest.fixture(scope="package")
def pool(deployed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    pool = make_pool(deployed, tmp_path_factory.mktemp("pool"))
    yield pool
    with api_clients(deployed) as (core, _):
        pool.stop(core)


@pytest.fixture(scope="package")
def extender(deployed: ControlPlane) -> Iterator[Extender]:
    ext = start_extender(deployed)
    yield ext
    ext.stop()


@pytest.fixture(scope="package")
def vramfit_scheduler(deployed: ControlPlane, extender: Extender) -> Iterator[SchedulerProcess]:
    """kube-scheduler with the shipped vramfit profile, as the vramfit-scheduler account."""
    identity = deployed.service_account_identity(SYSTEM, SCHEDULER_SA, label="kube-scheduler")
    scheduler = deployed.start_scheduler(
        shipped_scheduler_config(extender.url),
        name="scheduler-vramfit-e2e",
        kubeconfig=identity.kubeconfig,
    )
    yield scheduler
    scheduler.stop()


@pytest.fixture
def cluster(
    pool: Pool, extender: Extender, vramfit_scheduler: SchedulerProcess, deployed: ControlPlane
) -> Iterator[Cluster]:
    with api_clients(deployed) as (core, custom):
        c = Cluster(pool, extender, core, custom)
        c.wait_idle()
        yield c


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault(name): a fault test, run as many times as its trial count says"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test item per trial of a ``fault`` test (``VRAMFIT_FAULT_TRIALS``), each with a
    fresh namespace and an idle pool."""
    marker = metafunc.definition.get_closest_marker("fault")
    if marker is None or "trial" not in metafunc.fixturenames:
        return
    count = trial_counts(os.environ.get(TRIALS_ENV, ""))[marker.args[0]]
    metafunc.parametrize(
        "trial", range(1, count + 1), ids=[f"trial-{i}" for i in range(1, count + 1)]
    )


@pytest.fixture(scope="session")
def fault_record() -> Callable[[str], FaultRecord]:
    """The record of a fault, by name, kept for the end-of-run table."""
    return lambda name: _RECORDS.setdefault(name, FaultRecord(name))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RECORDS:
        return
    records = list(_RECORDS.values())
    terminalreporter.section("faults: trials, GPUs double-booked, pods lost, recovery")
    terminalreporter.write_line(table(records))
    target = os.environ.get(JSON_ENV)
    if target:
        trials = os.environ.get(TRIALS_ENV, "")
        command = shlex.join(["python", "-m", "pytest", *sys.argv[1:]])
        write_json(Path(target), records, command=f"{TRIALS_ENV}={trials} {command}")
        terminalreporter.write_line(f"written to {target}")
