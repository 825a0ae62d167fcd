"""Everything in deploy/ is accepted by the real API server and the real kube-scheduler."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controlplane.cluster import DEPLOY_DIR
from controlplane.harness import ControlPlane
from controlplane.manifests import (
    SCHEDULER_CONFIG_KIND,
    Document,
    is_api_object,
    load_documents,
    render,
    scheduler_configs,
    server_side_apply,
    yaml_files,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deploy_documents() -> list[Document]:
    documents = load_documents(yaml_files(DEPLOY_DIR))
    assert any(d.kind == "Namespace" and d.name == "vramfit-system" for d in documents)
    return documents


@pytest.fixture(scope="module")
def deployed(control_plane: ControlPlane, deploy_documents: list[Document]) -> list[str]:
    """deploy/ server-side applied to the test control plane (kubectl's report lines)."""
    return server_side_apply(control_plane.kubectl, deploy_documents)


def test_every_manifest_in_deploy_server_side_applies(
    control_plane: ControlPlane, deploy_documents: Sequence[Document], deployed: list[str]
) -> None:
    objects = [d for d in deploy_documents if is_api_object(d)]
    assert len(deployed) == len(objects), deployed
    assert all(line.endswith("serverside-applied") for line in deployed), deployed
    listed = control_plane.kubectl("get", "-f", "-", "-o", "name", input_text=render(objects))
    assert len(listed.stdout.split()) == len(objects)
    # Applying again is a no-op, not a conflict: `make cluster` may run on a live cluster.
    assert len(server_side_apply(control_plane.kubectl, deploy_documents)) == len(objects)


def test_every_scheduler_configuration_in_deploy_is_accepted_by_kube_scheduler(
    control_plane: ControlPlane, deploy_documents: Sequence[Document], deployed: list[str]
) -> None:
    configs = scheduler_configs(deploy_documents)
    # Exactly the files that mention the kind hold configurations that were found and parsed.
    mentioning = {p for p in yaml_files(DEPLOY_DIR) if SCHEDULER_CONFIG_KIND in p.read_text()}
    assert {c.where.split(" (document")[0] for c in configs} == {str(p) for p in mentioning}
    for i, found in enumerate(configs):
        # As deployed (leader election included); only the kubeconfig points at this plane.
        scheduler = control_plane.start_scheduler(
            found.config, name=f"deployed-{i}", leader_elect=True, fast_backoff=False
        )
        try:
            assert scheduler.running, found.where
        finally:
            scheduler.stop()
