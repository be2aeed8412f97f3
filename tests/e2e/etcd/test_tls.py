"""multinic-ipam on an etcd that requires TLS client certificates and user/password auth.

A production etcd has both. The member here is started with its own CA
(``EtcdCluster(tls=True)``: ``--client-cert-auth``, https client URL) and with
authentication enabled for a user allowed only under the store's prefix.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from multinic.cni.errors import ErrorCode
from multinic.plugins.install import install_plugins
from tests.support.etcd_cluster import EtcdCluster

PREFIX = "/tls-ipam/"
USER, PASSWORD = "ipam", "s3cret-pass"


def run_plugin(bin_dir: Path, command: str, config: dict[str, Any], cid: str) -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(bin_dir),
    }
    done = subprocess.run(
        [str(bin_dir / "multinic-ipam")],
        input=json.dumps(config).encode(),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"Traceback" not in done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


def test_tls_client_certificates_and_password_auth(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    with EtcdCluster(tmp_path / "etcd", size=1, tls=True) as cluster:
        cluster.enable_auth(USER, PASSWORD, PREFIX)
        assert cluster.tls is not None
        cert, key = cluster.tls.client
        secure = {
            "type": "etcd",
            "endpoints": cluster.endpoints,
            "prefix": PREFIX,
            "ca_file": str(cluster.tls.ca.cert),
            "cert_file": str(cert),
            "key_file": str(key),
            "username": USER,
            "password": PASSWORD,
        }
        config = {
            "cniVersion": "1.1.0",
            "name": "tls-net",
            "type": "macvlan",
            "ipam": {"type": "multinic-ipam", "range": "10.77.0.0/24", "store": secure},
        }
        status, result = run_plugin(bin_dir, "ADD", config, "c1")
        assert status == 0, result
        assert result["ips"][0]["address"] == "10.77.0.1/24"

        # Whereabouts' spelling of the same: etcd_host and the etcd_* files and credentials.
        whereabouts = {
            "type": "multinic-ipam",
            "range": "10.77.0.0/24",
            "datastore": "etcd",
            "etcd_host": cluster.endpoints[0].removeprefix("https://"),
            "etcd_ca_cert_file": str(cluster.tls.ca.cert),
            "etcd_cert_file": str(cert),
            "etcd_key_file": str(key),
            "etcd_username": USER,
            "etcd_password": PASSWORD,
        }
        theirs = {**config, "ipam": whereabouts}
        # The default prefix is outside the user's permission: refused, clearly, code 5.
        status, error = run_plugin(bin_dir, "ADD", theirs, "c2")
        assert status == 1 and error["code"] == ErrorCode.IO_FAILURE, error
        assert "permission denied" in error["details"], error

        # A wrong password, and no client certificate: code 5 with the reason, no traceback.
        wrong = {**config, "ipam": {**config["ipam"], "store": {**secure, "password": "nope"}}}
        status, error = run_plugin(bin_dir, "ADD", wrong, "c3")
        assert status == 1 and error["code"] == ErrorCode.IO_FAILURE, error
        assert "credentials" in error["details"], error
        no_cert = {k: v for k, v in secure.items() if k not in ("cert_file", "key_file")}
        anonymous = {**config, "ipam": {**config["ipam"], "store": no_cert}}
        status, error = run_plugin(bin_dir, "ADD", anonymous, "c4")
        assert status == 1 and error["code"] in (ErrorCode.IO_FAILURE, ErrorCode.TRY_AGAIN_LATER)
        assert "TLS" in error["details"] or "SSL" in error["details"], error

        status, _ = run_plugin(bin_dir, "DEL", config, "c1")
        assert status == 0
        status, again = run_plugin(bin_dir, "ADD", config, "c5")
        assert status == 0 and again["ips"][0]["address"] == "10.77.0.2/24"  # round robin
