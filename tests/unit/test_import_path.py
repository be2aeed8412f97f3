"""A plugin executable's import path stays lean: a structural guard, not a timing test.

Every pod start runs a plugin, so whatever ``multinic.cni.skel`` imports is paid
on every pod start. These modules each cost as much as the whole plugin entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "asyncio",
    "click",
    "dataclasses",
    "email",  # http.client's header parsing: ~20 ms; the stores use multinic.minihttp
    "http.client",
    "inspect",
    "logging",
    "pathlib",
    "pyroute2",
    "rich",
    "subprocess",
    "tempfile",
    "traceback",
)

PLUGIN_PATH_MODULES = (
    "multinic.cni.skel",
    "multinic.cni.types",
    "multinic.cni.config",
    "multinic.cni.spawn",
    "multinic.plugins.delegate",
    "multinic.plugins.registry",
    "multinic.plugins.host_local",
    "multinic.plugins.static",
    "multinic.plugins.cluster_ipam",
    "multinic.plugins.bridge",
    "multinic.plugins.ptp",
    "multinic.plugins.loopback",
    "multinic.plugins.masq",
    "multinic.ipam.sqlite_store",
    "multinic.ipam.etcd_store",
    "multinic.ipam.kube_store",
    "multinic.plugins.lower",
    "multinic.plugins.macvlan",
    "multinic.plugins.ipvlan",
    "multinic.plugins.vlan",
    "multinic.plugins.host_device",
    "multinic.plugins.tuning",
    "multinic.plugins.sbr",
    "multinic.dataplane.alias",
)


@pytest.mark.parametrize("module", PLUGIN_PATH_MODULES)
def test_plugin_path_imports_nothing_heavy(module: str) -> None:
    probe = (
        "import sys, json; before = set(sys.modules); "
        f"import {module}; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    assert module in loaded  # the probe really imported it
    assert sorted(loaded & set(HEAVY)) == []


def test_the_etcd_store_without_tls_loads_no_ssl() -> None:
    # Loading OpenSSL costs milliseconds of every plugin start; plain-http etcd needs none.
    probe = "import sys; import multinic.ipam.etcd_store; print('ssl' in sys.modules)"
    assert bare_python(probe).split() == ["False"]


def test_cluster_ipam_on_sqlite_loads_no_etcd_client(tmp_path: Path) -> None:
    # The etcd client (and http.client under it) is imported only when a config names etcd.
    conf = {
        "cniVersion": "1.1.0",
        "name": "net",
        "type": "multinic-ipam",
        "ipam": {"range": "10.9.0.0/24", "store": {"path": str(tmp_path / "ipam.db")}},
    }
    probe = (
        "import sys, json, os; from multinic.cni import skel; "
        "from multinic.plugins.cluster_ipam import PLUGIN; "
        "env = dict(CNI_COMMAND='ADD', CNI_CONTAINERID='c', CNI_NETNS='/x', CNI_IFNAME='e0', "
        "CNI_PATH='/x'); "
        f"status, out = skel.run(PLUGIN, env, {json.dumps(conf)!r}.encode()); "
        "print(json.dumps([status, sorted(sys.modules)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    status, loaded = json.loads(done.stdout)
    assert status == 0
    assert "multinic.ipam.sqlite_store" in loaded  # the probe really allocated
    assert [m for m in loaded if "etcd" in m or m == "http.client"] == []
    assert sorted(set(loaded) & set(HEAVY)) == []


#: Plugins (and the IPAM modules they pull in) whose path is free of typing; the generic
#: allocator and the store protocol take Generic, TypeVar and Protocol from multinic.records.
NO_TYPING_MODULES = (
    "multinic.records",
    "multinic.cni.skel",
    "multinic.plugins.bridge",
    "multinic.plugins.ptp",
    "multinic.plugins.loopback",
    "multinic.plugins.macvlan",
    "multinic.plugins.ipvlan",
    "multinic.plugins.vlan",
    "multinic.plugins.host_device",
    "multinic.plugins.tuning",
    "multinic.plugins.sbr",
    "multinic.plugins.nftables",
    "multinic.plugins.host_local",
    "multinic.plugins.static",
    "multinic.plugins.cluster_ipam",
    "multinic.ipam.ranges",
    "multinic.ipam.netconf",
    "multinic.ipam.allocator",
    "multinic.ipam.store",
    "multinic.ipam.blocks",
    "multinic.ipam.hostlocal_store",
    "multinic.ipam.sqlite_store",
    "multinic.ipam.etcd_store",
    "multinic.ipam.kube_store",
    "multinic.minihttp",
)


@pytest.mark.parametrize("module", NO_TYPING_MODULES)
def test_plugin_path_imports_no_typing(module: str) -> None:
    # typing costs about as much as the plugin's own modules; the path's NamedTuples come
    # from multinic.records and typing-only names are imported under TYPE_CHECKING.
    probe = (
        f"import sys; import {module}; print('typing' in sys.modules, {module!r} in sys.modules)"
    )
    assert bare_python(probe).split() == ["False", "True"]


def bare_python(code: str) -> str:
    """stdout of ``code`` run by ``python -I -S`` (as the plugin executables run), with
    this interpreter's import path so it finds multinic."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


#: One IPAM section per in-process IPAM plugin; "DATA" becomes a scratch directory.
IPAM_CALLS = {
    "multinic.plugins.host_local": {
        "type": "multinic-host-local",
        "dataDir": "DATA",
        "ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "fd00:9::/64"}]],
    },
    "multinic.plugins.static": {
        "type": "multinic-static",
        "addresses": [{"address": "10.9.0.5/24"}],
    },
    "multinic.plugins.cluster_ipam": {
        "type": "multinic-ipam",
        "range": "10.9.0.0/24",
        "store": {"path": "DATA/ipam.db"},
    },
}


@pytest.mark.parametrize("module", sorted(IPAM_CALLS))
def test_ipam_plugin_calls_load_no_typing(module: str, tmp_path: Path) -> None:
    # Imports inside functions (the store, sqlite3) are paid per call, not per import.
    ipam = json.loads(json.dumps(IPAM_CALLS[module]).replace("DATA", str(tmp_path)))
    conf = json.dumps({"cniVersion": "1.1.0", "name": "net", "ipam": ipam}).encode()
    probe = (
        "import sys, json; from multinic.cni import skel; "
        f"from {module} import PLUGIN; "
        "env = dict(CNI_CONTAINERID='c', CNI_NETNS='/x', CNI_IFNAME='e0', CNI_PATH='/x'); "
        f"codes = [skel.run(PLUGIN, {{**env, 'CNI_COMMAND': c}}, {conf!r})[0] "
        "for c in ('ADD', 'DEL')]; "
        "print(json.dumps([codes, 'typing' in sys.modules]))"
    )
    assert json.loads(bare_python(probe)) == [[0, 0], False]
