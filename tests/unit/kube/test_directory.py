"""The standalone source: Pods and NADs from a directory of YAML objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multinic.cni.errors import (
    DecodingError,
    ErrorCode,
    InvalidConfigError,
    IOFailureError,
    PodNotFoundError,
)
from multinic.kube.directory import DirectorySource
from multinic.kube.objects import NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION

MACVLAN = '{"cniVersion": "1.0.0", "name": "data", "type": "macvlan", "master": "eth1"}'

OBJECTS = f"""
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: data
  namespace: telco
spec:
  config: '{MACVLAN}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: from-file       # no namespace: "default", as kubectl does
spec: {{}}
---
apiVersion: v1
kind: Pod
metadata:
  name: upf-0
  namespace: telco
  uid: 1f0e-aa
  annotations:
    {NETWORKS_ANNOTATION}: data@n3
    team: core
spec:
  nodeName: node-a
---
apiVersion: v1
kind: ConfigMap          # not ours: ignored
metadata: {{name: data, namespace: telco}}
"""


@pytest.fixture
def objects_dir(tmp_path: Path) -> Path:
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    return tmp_path


def test_reads_nads_and_pods_from_a_file_of_several_objects(objects_dir: Path) -> None:
    source = DirectorySource(objects_dir)

    assert source.get_network_config("telco", "data") == MACVLAN
    assert source.get_network_config("default", "from-file") == ""
    pod = source.get_pod("telco", "upf-0")
    assert pod.uid == "1f0e-aa"
    assert pod.node_name == "node-a"
    assert pod.annotations == {NETWORKS_ANNOTATION: "data@n3", "team": "core"}


def test_a_kind_list_and_json_files_count_too(tmp_path: Path) -> None:
    items = [
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": f"net{n}", "namespace": "ns"},
            "spec": {"config": f'{{"name": "net{n}"}}'},
        }
        for n in range(3)
    ]
    (tmp_path / "list.json").write_text(json.dumps({"kind": "List", "items": items}))
    (tmp_path / "notes.txt").write_text("kind: Pod\n")  # not a manifest suffix

    source = DirectorySource(tmp_path)

    assert [source.get_network_config("ns", f"net{n}") for n in range(3)] == [
        f'{{"name": "net{n}"}}' for n in range(3)
    ]


def test_missing_objects(objects_dir: Path) -> None:
    source = DirectorySource(objects_dir)

    assert source.get_network_config("telco", "nope") is None
    assert source.get_network_config("other", "data") is None  # namespaces are separate
    with pytest.raises(PodNotFoundError, match=r"no pod telco/nope") as caught:
        source.get_pod("telco", "nope")
    assert caught.value.code == ErrorCode.UNKNOWN_CONTAINER


@pytest.mark.parametrize("name", ["../objects", "a/b", "..", "UPPER", "", "x" * 254])
def test_a_name_no_object_can_have_is_not_found_and_never_a_path(
    objects_dir: Path, name: str
) -> None:
    source = DirectorySource(objects_dir)

    assert source.get_network_config("telco", name) is None
    assert source.get_network_config(name, "data") is None
    with pytest.raises(PodNotFoundError):
        source.get_pod(name, "upf-0")


def test_an_edit_counts_from_the_next_call(objects_dir: Path) -> None:
    source = DirectorySource(objects_dir)
    assert source.get_network_config("telco", "data") == MACVLAN

    (objects_dir / "objects.yaml").write_text(OBJECTS.replace('"eth1"', '"eth2"'))

    assert source.get_network_config("telco", "data") == MACVLAN.replace("eth1", "eth2")


def test_an_object_defined_twice_is_refused_naming_both_files(objects_dir: Path) -> None:
    (objects_dir / "zz-copy.yml").write_text(OBJECTS)

    with pytest.raises(InvalidConfigError, match=r"telco/data is defined more than once") as caught:
        DirectorySource(objects_dir).get_network_config("telco", "data")
    assert "objects.yaml" in caught.value.details
    assert "zz-copy.yml" in caught.value.details


def test_a_broken_file_hides_nothing_found_elsewhere_but_is_named_when_missing(
    objects_dir: Path,
) -> None:
    (objects_dir / "broken.yaml").write_text("kind: [unclosed\n")
    source = DirectorySource(objects_dir)

    assert source.get_network_config("telco", "data") == MACVLAN
    with pytest.raises(DecodingError, match=r"telco/nope not found") as caught:
        source.get_network_config("telco", "nope")
    assert "broken.yaml" in caught.value.details


def test_a_config_that_is_not_a_string_is_refused_as_the_crd_would(tmp_path: Path) -> None:
    (tmp_path / "nad.yaml").write_text(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        "metadata: {name: data}\nspec:\n  config: {name: data, type: macvlan}\n"
    )

    with pytest.raises(InvalidConfigError, match=r"default/data") as caught:
        DirectorySource(tmp_path).get_network_config("default", "data")
    assert "spec.config must be a string" in caught.value.details


def test_a_missing_directory_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(IOFailureError, match=r"cannot read objects directory"):
        DirectorySource(tmp_path / "absent").get_network_config("default", "data")


def test_network_status_is_written_beside_and_read_back_as_an_annotation(
    objects_dir: Path,
) -> None:
    source = DirectorySource(objects_dir)
    status = [{"name": "telco/data", "interface": "n3", "ips": ["10.0.0.5"], "default": False}]

    source.set_network_status("telco", "upf-0", status, uid="1f0e-aa")

    annotations = source.get_pod("telco", "upf-0").annotations
    assert json.loads(annotations[NETWORK_STATUS_ANNOTATION]) == status
    assert annotations["team"] == "core"
    assert "network-status" not in (objects_dir / "objects.yaml").read_text()  # YAML untouched
    assert (objects_dir / ".status" / "telco" / "upf-0.json").is_file()


def test_status_for_another_uid_is_refused_and_an_old_pods_status_not_shown(
    objects_dir: Path, tmp_path: Path
) -> None:
    source = DirectorySource(objects_dir, status_dir=tmp_path / "status")
    with pytest.raises(PodNotFoundError, match=r"with uid other"):
        source.set_network_status("telco", "upf-0", [], uid="other")
    source.set_network_status("telco", "upf-0", [{"name": "x"}])

    # The pod is deleted and created again under the same name: a new uid.
    (objects_dir / "objects.yaml").write_text(OBJECTS.replace("1f0e-aa", "2b2b-bb"))

    assert NETWORK_STATUS_ANNOTATION not in source.get_pod("telco", "upf-0").annotations


def test_status_of_a_missing_pod_is_refused(objects_dir: Path) -> None:
    with pytest.raises(PodNotFoundError):
        DirectorySource(objects_dir).set_network_status("telco", "gone", [])
    assert not (objects_dir / ".status").exists()
