"""multinic.kube.rest: kubeconfig loading (no API server needed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from multinic.cni.errors import ErrorCode, InvalidConfigError
from multinic.kube.rest import load_access


def kubeconfig(
    tmp_path: Path, user: dict[str, object], server: str = "https://10.0.0.1:6443"
) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server, "certificate-authority": "ca.crt"}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    return str(path)


def test_paths_are_relative_to_the_kubeconfig_and_data_is_decoded(tmp_path: Path) -> None:
    cert = base64.b64encode(b"CERT").decode()
    access = load_access(
        kubeconfig(tmp_path, {"client-certificate-data": cert, "client-key": "k.pem"})
    )
    assert (access.host, access.port, access.tls) == ("10.0.0.1", 6443, True)
    assert access.ca_file == str(tmp_path / "ca.crt")
    assert access.cert_data == b"CERT" and access.key_file == str(tmp_path / "k.pem")


def test_a_yaml_kubeconfig_with_a_token(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(
        "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:8080\n"
        "users:\n- name: u\n  user:\n    token: abc\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
    )
    access = load_access(str(path))
    assert access.token == "abc" and not access.tls and access.port == 8080  # noqa: S105


@pytest.mark.parametrize(
    ("user", "server", "words"),
    [
        ({"exec": {"command": "aws"}}, "https://h", "exec and auth-provider"),
        ({}, "ftp://h", "not an http(s) URL"),
        ({"client-key-data": "!!"}, "https://h", "not base64"),
    ],
)
def test_bad_kubeconfigs_are_code_7(
    tmp_path: Path, user: dict[str, object], server: str, words: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_access(kubeconfig(tmp_path, user, server))
    assert words in str(caught.value) and caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG


def test_no_kubeconfig_outside_a_pod_is_code_7(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InvalidConfigError, match="not running in a pod"):
        load_access(None)
