"""Reading and ordering the manifests of deploy/, and finding scheduler configurations in them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.manifests import (
    Document,
    ManifestError,
    apply_phases,
    load_documents,
    parse_documents,
    render,
    scheduler_configs,
    yaml_files,
)

SOURCE = Path("deploy/x.yaml")

SCHEDULER_CONFIG = """apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: vramfit
"""


def _doc(kind: str, name: str = "n", api_version: str = "v1", **extra: object) -> Document:
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **extra}
    return Document(SOURCE, 0, body)


def test_parse_documents_skips_empty_documents_and_counts_the_rest() -> None:
    text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n" + (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: a}\n"
    )
    documents = parse_documents(text, SOURCE)
    assert [(d.index, d.kind, d.name) for d in documents] == [
        (0, "Namespace", "a"),
        (1, "ConfigMap", "b"),
    ]
    assert documents[1].where == "deploy/x.yaml (document 2)"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a: [", ["deploy/x.yaml: not valid YAML"]),
        ("- a\n- b\n", ["deploy/x.yaml (document 1): expected a mapping, got list"]),
        (
            "kind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n",
            [
                "deploy/x.yaml (document 1): missing apiVersion",
                "deploy/x.yaml (document 2): missing metadata.name",
            ],
        ),
    ],
    ids=["broken-yaml", "not-a-mapping", "missing-fields-in-two-documents"],
)
def test_parse_documents_reports_every_problem(text: str, fragments: list[str]) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_documents(text, SOURCE)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_component_config_needs_no_name() -> None:
    (document,) = parse_documents(SCHEDULER_CONFIG, SOURCE)
    assert document.kind == "KubeSchedulerConfiguration"


def test_apply_phases_put_namespaces_and_crds_first_and_leave_out_config_files() -> None:
    documents = [
        _doc("ServiceAccount", namespace="vramfit-system"),
        _doc("CustomResourceDefinition", "x.vramfit.io", "apiextensions.k8s.io/v1"),
        _doc("KubeSchedulerConfiguration", api_version="kubescheduler.config.k8s.io/v1"),
        _doc("Kustomization", api_version="kustomize.config.k8s.io/v1beta1"),
        _doc("Namespace", "vramfit-system"),
        _doc("DaemonSet", api_version="apps/v1"),
    ]
    first, rest = apply_phases(documents)
    assert [d.kind for d in first] == ["CustomResourceDefinition", "Namespace"]
    assert [d.kind for d in rest] == ["ServiceAccount", "DaemonSet"]


def test_scheduler_configs_are_found_as_documents_and_in_configmaps() -> None:
    documents = [
        Document(SOURCE, 0, yaml.safe_load(SCHEDULER_CONFIG)),
        _doc("ConfigMap", "sched", data={"other": "x: 1", "config.yaml": SCHEDULER_CONFIG}),
        _doc("ConfigMap", "unrelated", data={"a": "b"}),
        _doc("ConfigMap", "binary-only"),
    ]
    found = scheduler_configs(documents)
    assert [f.where for f in found] == [
        "deploy/x.yaml (document 1)",
        "deploy/x.yaml (document 1), ConfigMap sched key config.yaml",
    ]
    assert all(f.config["profiles"] == [{"schedulerName": "vramfit"}] for f in found)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (
            "# KubeSchedulerConfiguration\nkind: Other\n",
            "mentions KubeSchedulerConfiguration but is not one",
        ),
        ("kind: KubeSchedulerConfiguration\nprofiles: [\n", "not valid YAML"),
    ],
    ids=["mentions-but-is-not", "broken-yaml"],
)
def test_a_configmap_value_that_fails_to_be_a_scheduler_config_is_an_error(
    value: str, fragment: str
) -> None:
    with pytest.raises(ManifestError, match=f"ConfigMap sched key c: {fragment}"):
        scheduler_configs([_doc("ConfigMap", "sched", data={"c": value})])


def test_yaml_files_walks_subfolders_and_ignores_other_files(tmp_path: Path) -> None:
    names = ("b.yaml", "sub/a.yml", "README.md", "sub/c.json", "components/x/kustomization.yaml")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in yaml_files(tmp_path)] == [
        "b.yaml",
        "sub/a.yml",
    ]


def test_load_documents_reports_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- 1\n")
    (tmp_path / "b.yaml").write_text("kind: Namespace\n")
    with pytest.raises(ManifestError) as caught:
        load_documents([tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"])
    message = str(caught.value)
    assert "a.yaml (document 1): expected a mapping" in message
    assert "b.yaml (document 1): missing apiVersion, metadata.name" in message
    assert "c.yaml: cannot read" in message


def test_render_round_trips() -> None:
    documents = [_doc("Namespace", "a"), _doc("ConfigMap", "b", data={"k": "v"})]
    assert [d.body for d in parse_documents(render(documents), SOURCE)] == [
        d.body for d in documents
    ]
