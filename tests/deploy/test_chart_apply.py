"""Every variant of charts/vramfit, rendered by ``helm template`` into a fresh namespace, is
server-side applied to the real API server, and every scheduler configuration it carries starts
the real kube-scheduler."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from controlplane.harness import ControlPlane
from controlplane.manifests import (
    is_api_object,
    load_documents,
    render,
    scheduler_configs,
    server_side_apply,
)
from tests.deploy.chart import VARIANTS, deploy_manifests, template

pytestmark = pytest.mark.integration

THIRD_PARTY_CRDS = Path(__file__).with_name("third-party-crds.yaml")
CLUSTER_SCOPED = frozenset(
    {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
    }
)


@pytest.fixture(scope="module", autouse=True)
def cluster_objects_restored(control_plane: ControlPlane) -> Iterator[None]:
    """The PrometheusRule and cert-manager CRDs for the optional objects; afterwards the
    cluster-wide objects (the CRD, RBAC, admission policy and webhook), which each variant
    pointed at its own namespace, are put back as deploy/ has them for the tests that follow."""
    server_side_apply(control_plane.kubectl, load_documents([THIRD_PARTY_CRDS]))
    yield
    server_side_apply(control_plane.kubectl, load_documents(deploy_manifests()))


def _with_ca_file(config: Mapping[str, Any], ca_file: Path) -> dict[str, Any]:
    """Pure: ``config`` with every extender's CA file replaced by one that exists here."""
    result = copy.deepcopy(dict(config))
    for extender in result.get("extenders") or []:
        if "tlsConfig" in extender:
            extender["tlsConfig"]["caFile"] = str(ca_file)
    return result


@pytest.mark.parametrize("values", list(VARIANTS.values()), ids=list(VARIANTS))
def test_variant_applies_server_side_to_the_api_server(
    control_plane: ControlPlane, helm: Path, namespace: str, values: Mapping[str, Any]
) -> None:
    documents = template(helm, values, namespace)
    objects = [d for d in documents if is_api_object(d)]
    for document in objects:
        metadata = document.body["metadata"]
        if document.kind in CLUSTER_SCOPED:
            assert "namespace" not in metadata, document.where
        else:  # one RoleBinding lives in kube-system: it reads the authentication config there
            assert metadata["namespace"] in (namespace, "kube-system"), document.where

    applied = server_side_apply(control_plane.kubectl, documents)
    assert len(applied) == len(objects), applied
    assert all(line.endswith("serverside-applied") for line in applied), applied
    listed = control_plane.kubectl("get", "-f", "-", "-o", "name", input_text=render(objects))
    assert len(listed.stdout.split()) == len(objects)
    # An upgrade that changes nothing is no conflict.
    assert len(server_side_apply(control_plane.kubectl, documents)) == len(objects)

    for i, found in enumerate(scheduler_configs(documents)):
        config = _with_ca_file(found.config, control_plane.ca_file)
        scheduler = control_plane.start_scheduler(config, name=f"chart-{namespace}-{i}")
        try:
            assert scheduler.running, found.where
        finally:
            scheduler.stop()


def _extender_on(values: Mapping[str, Any]) -> bool:
    return bool(values.get("extender", {}).get("enabled", True))


def test_each_variant_with_the_extender_carries_one_scheduler_configuration(helm: Path) -> None:
    """What the apply test starts kube-scheduler with: one configuration wherever the extender
    is on (the profile's, or the entry for the default scheduler), none where it is off."""
    for name, values in VARIANTS.items():
        configs = scheduler_configs(template(helm, values, "t-configs"))
        assert len(configs) == (1 if _extender_on(values) else 0), name
        if configs:
            (extender,) = configs[0].config["extenders"]
            assert extender["filterVerb"] == "filter" and extender["bindVerb"] == "bind", name
