"""The node daemon's config file, and `multinic node` starting and stopping on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from multinic.cni.errors import InvalidConfigError
from multinic.node.config import load_node_config
from tests.support.etcd_cluster import free_port


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path


def test_defaults_and_the_fields_given(tmp_path: Path) -> None:
    config = load_node_config(
        write(
            tmp_path,
            "clusterNetwork: cluster\nconfDir: /etc/cni/net.d\nobjectsDir: /srv/objects\n"
            "healthAddress: '127.0.0.2:9999'\nworkers: 4\nbinDir: [/opt/cni/bin, /usr/lib/cni]\n",
        )
    )
    assert config.meta.cluster_network == "cluster"
    assert config.meta.objects_dir == Path("/srv/objects")
    assert config.daemon.socket_path == Path("/run/multinic/cni.sock")
    assert config.daemon.cni_conf_dir == Path("/etc/cni/net.d")
    assert (config.daemon.health_host, config.daemon.health_port) == ("127.0.0.2", 9999)
    assert config.daemon.workers == 4
    assert config.bin_dirs == (Path("/opt/cni/bin"), Path("/usr/lib/cni"))
    assert config.state_dir == Path("/var/lib/multinic/meta")
    assert config.ipam_reconcile is None
    assert config.daemon.cni_version == "1.1.0"


def test_the_conflist_version_for_an_older_runtime(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "clusterNetwork: c\ncniVersion: 1.0.0\n"))
    assert config.daemon.cni_version == "1.0.0"


def test_the_ipam_reconciler_section(tmp_path: Path) -> None:
    config = load_node_config(
        write(
            tmp_path,
            "clusterNetwork: c\nkubeconfig: /etc/k.conf\n"
            "ipamReconcile: {interval: 60, grace: 120, scope: s}\n",
        )
    )
    settings = config.ipam_reconcile
    assert settings is not None and settings.kubeconfig == "/etc/k.conf"
    assert (settings.interval, settings.grace, settings.scope) == (60.0, 120.0, "s")
    on = load_node_config(write(tmp_path, "clusterNetwork: c\nipamReconcile: true\n"))
    assert on.ipam_reconcile is not None and on.ipam_reconcile.kubeconfig is None  # in-cluster


PODNET = (
    "clusterNetwork: c\npodnet: {store: {type: kubernetes}, podBlock: 10.32.0.0/16, uplink: eth0}\n"
)


def test_podnet_node_name_comes_from_node_name_variable_when_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One ConfigMap serves every node; the DaemonSet's downward API sets NODE_NAME.
    monkeypatch.setenv("NODE_NAME", "worker-7")
    config = load_node_config(write(tmp_path, PODNET))
    assert config.podnet is not None and config.podnet.node_name == "worker-7"
    given = load_node_config(write(tmp_path, PODNET.replace("uplink:", "nodeName: n1, uplink:")))
    assert given.podnet is not None and given.podnet.node_name == "n1"  # the file wins


def test_podnet_without_node_name_or_variable_is_code_7_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    with pytest.raises(InvalidConfigError) as caught:
        load_node_config(write(tmp_path, PODNET))
    assert "nodeName" in str(caught.value) and "NODE_NAME" in str(caught.value)
    assert caught.value.code == 7


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("clusterNetwork: c\nsocketpath: /x\n", "unknown fields ['socketpath']"),
        ("defaultNetworks: []\n", "clusterNetwork"),
        ("clusterNetwork: c\nworkers: 0\n", "workers"),
        ("clusterNetwork: c\nworkers: true\n", "workers"),
        ("clusterNetwork: c\nsocketPath: relative.sock\n", "socketPath"),
        ("clusterNetwork: c\nhealthAddress: nowhere\n", "healthAddress"),
        ("clusterNetwork: c\nhealthAddress: 'h:70000'\n", "healthAddress"),
        ("clusterNetwork: c\nconflistName: a/b\n", "conflistName"),
        ("clusterNetwork: c\ncniVersion: 1.2.0\n", "cniVersion"),
        ("clusterNetwork: c\ncniVersion: 1\n", "cniVersion"),
        ("- a list\n", "mapping"),
        ("clusterNetwork: [unclosed\n", "cannot read"),
        ("clusterNetwork: c\nipamReconcile: {interval: 0}\n", "ipamReconcile.interval"),
        ("clusterNetwork: c\nipamReconcile: {grase: 5}\n", "unknown fields ['grase']"),
        ("clusterNetwork: c\nipamReconcile: {kubeconfig: k}\n", "kubeconfig"),
    ],
)
def test_a_bad_config_is_code_7_naming_what(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(InvalidConfigError, match=r".*") as caught:
        load_node_config(write(tmp_path, text))
    assert words in str(caught.value)
    assert caught.value.code == 7


def test_multinic_node_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "objects").mkdir()
    config = write(
        tmp_path,
        f"clusterNetwork: cluster\nconfDir: {tmp_path}/net.d\nobjectsDir: {tmp_path}/objects\n"
        f"socketPath: {tmp_path}/run/cni.sock\nstateDir: {tmp_path}/state\n"
        f"healthAddress: '127.0.0.1:{port}'\n",
    )
    multinic = Path(sys.executable).with_name("multinic")
    daemon = subprocess.Popen(
        [str(multinic), "node", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        conflist = tmp_path / "net.d" / "00-multinic.conflist"
        deadline = time.monotonic() + 30
        while not conflist.exists() and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.05)
        assert conflist.exists(), daemon.stderr.read() if daemon.stderr else ""
        assert (tmp_path / "run" / "cni.sock").is_socket()
        assert oct((tmp_path / "run" / "cni.sock").stat().st_mode & 0o777) == "0o600"
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert not (tmp_path / "run" / "cni.sock").exists()
    assert conflist.exists()  # kept across restarts on purpose


def test_multinic_node_with_a_bad_config_exits_1_with_a_message(tmp_path: Path) -> None:
    config = write(tmp_path, "clusterNetwork: c\nbogus: 1\n")
    multinic = Path(sys.executable).with_name("multinic")
    done = subprocess.run(
        [str(multinic), "node", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 1
    assert "unknown fields ['bogus']" in done.stderr
    assert "Traceback" not in done.stderr
