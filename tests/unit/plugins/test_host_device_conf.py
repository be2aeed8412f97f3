"""multinic-host-device's config and its sysfs look-ups (kernelpath, pciBusID).

There is no PCI network device to give away on a test machine: the sysfs look-ups
run against a fake tree under tmp_path (the one boundary mocked here), laid out as
the kernel lays out /sys/devices and /sys/bus/pci/devices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multinic.cni import skel
from multinic.cni.errors import CNIError, InvalidConfigError, UnsupportedFieldError
from multinic.plugins import host_device
from multinic.plugins.host_device import HostDeviceConf, load_conf, sysfs_device_name


def request(**fields: Any) -> skel.Request:
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "multinic-host-device", **fields}
    env = {"CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "net1", "CNI_PATH": "/x"}
    return skel.parse_request(
        "ADD", env, json.dumps(conf).encode(), host_device.PLUGIN.supported_versions
    )


@pytest.fixture
def sys_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(host_device, "SYS_ROOT", str(tmp_path))
    pci = tmp_path / "devices/pci0000:00"
    (pci / "0000:00:03.0/net/ens3").mkdir(parents=True)
    (pci / "0000:00:04.0/virtio1/net/eth7").mkdir(parents=True)
    (pci / "0000:00:05.0").mkdir(parents=True)
    drivers = tmp_path / "bus/pci/drivers"
    for driver in ("virtio-pci", "vfio-pci", "e1000"):
        (drivers / driver).mkdir(parents=True)
    (pci / "0000:00:03.0/driver").symlink_to(drivers / "e1000")
    (pci / "0000:00:04.0/driver").symlink_to(drivers / "virtio-pci")
    (pci / "0000:00:05.0/driver").symlink_to(drivers / "vfio-pci")
    devices = tmp_path / "bus/pci/devices"
    devices.mkdir(parents=True)
    for address in ("0000:00:03.0", "0000:00:04.0", "0000:00:05.0"):
        (devices / address).symlink_to(pci / address)
    return tmp_path


def test_runtime_device_id_overrides_pci_bus_id() -> None:
    conf = load_conf(request(pciBusID="0000:00:03.0", runtimeConfig={"deviceID": "0000:00:04.0"}))
    assert conf == HostDeviceConf("", "", "", "0000:00:04.0")
    assert load_conf(request(hwaddr="02:AA:00:00:00:01")).hwaddr == "02:aa:00:00:00:01"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "specify either"),
        ({"pciBusID": "../../x"}, "field 'pciBusID' is not a PCI address"),
        ({"kernelpath": "devices/x"}, "field 'kernelpath' must be absolute"),
        ({"hwaddr": "02:00"}, "field 'hwaddr' is not a MAC address"),
    ],
)
def test_bad_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        load_conf(request(**fields))


def test_kernelpath_and_pci_addresses_name_their_device(sys_root: Path) -> None:
    by_path = HostDeviceConf("", "", "/sys/devices/pci0000:00/0000:00:03.0", "")
    assert sysfs_device_name(by_path) == "ens3"
    assert sysfs_device_name(HostDeviceConf("", "", "", "0000:00:03.0")) == "ens3"
    assert sysfs_device_name(HostDeviceConf("", "", "", "0000:00:04.0")) == "eth7"  # virtio


def test_userspace_driver_is_refused_and_a_missing_device_named(sys_root: Path) -> None:
    with pytest.raises(UnsupportedFieldError, match="bound to vfio-pci"):
        sysfs_device_name(HostDeviceConf("", "", "", "0000:00:05.0"))
    with pytest.raises(CNIError, match=r"no network device under PCI device 0000:00:09\.0"):
        sysfs_device_name(HostDeviceConf("", "", "", "0000:00:09.0"))
    with pytest.raises(CNIError, match="no network device under /sys/devices/none"):
        sysfs_device_name(HostDeviceConf("", "", "/sys/devices/none", ""))
