"""multinic-host-device: move an existing host device into the pod, and back on DEL.

Fields as the reference: ``device`` (its name), ``hwaddr`` (its MAC),
``kernelpath`` (``/sys/devices/...``: the first network device under it),
``pciBusID`` (overridden by ``runtimeConfig.deviceID``, the device-plugin
capability); one of them is required. ``ipam`` is optional.

ADD records the device's host name in its alias (IFLA_IFALIAS, as the
reference, so either plugin can return the other's device), moves it into the
pod renamed to CNI_IFNAME and brings it up. DEL moves it back under its
original name, left down as the reference does, with the MTU the ADD result
recorded (``mtu`` of the pod interface, a 1.1.0 result field). When the pod's
namespace is already gone the kernel has returned a physical device to the
host by itself, under the pod's name or ``devN``: DEL (and GC) find it by its
alias and rename it back. Virtual devices (veth, macvlan...) die with the
namespace; nothing can bring those back.
"""

from __future__ import annotations

import contextlib
import os

from multinic.cni import skel
from multinic.cni.errors import (
    CNIError,
    InvalidConfigError,
    PluginNotAvailableError,
    UnsupportedFieldError,
)
from multinic.cni.types import Interface, Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    DataplaneError,
    Link,
    LinkExistsError,
    Netns,
    NetnsNotFoundError,
    find_link,
    host_netns,
    list_links,
    move_link,
    open_netns,
    set_link,
)
from multinic.dataplane.alias import set_alias
from multinic.dataplane.links import mac_bytes
from multinic.plugins import lower
from multinic.plugins.attach import (
    InterfaceDriftError,
    assign_to_interface,
    check_interface,
    configure_interface,
    require_prev_result,
)
from multinic.plugins.delegate import delegate, ipam_add, ipam_check, ipam_del, ipam_type
from multinic.plugins.fields import Fields, plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

TYPE = "multinic-host-device"
#: Where sysfs is; tests point it at a fake tree (no PCI devices to move here).
SYS_ROOT = "/sys"
#: Drivers that take a PCI device away from the kernel's network stack (DPDK).
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")


class DeviceNotFoundError(CNIError):
    """The device the config names is not on the host."""


class HostDeviceConf(NamedTuple):
    """The plugin's own fields (pci_bus_id already overridden by runtimeConfig.deviceID)."""

    device: str
    hwaddr: str
    kernelpath: str
    pci_bus_id: str


def load_conf(request: skel.Request) -> HostDeviceConf:
    """Parse and validate the config."""
    fields = plugin_fields(request.config.raw, TYPE)
    runtime = Fields(request.config.runtime_config, f"{TYPE}: runtimeConfig")
    conf = HostDeviceConf(
        device=fields.link_name("device"),
        hwaddr=fields.string("hwaddr").lower(),
        kernelpath=fields.string("kernelpath"),
        pci_bus_id=runtime.string("deviceID") or fields.string("pciBusID"),
    )
    if not any(conf):
        raise InvalidConfigError(
            f'{TYPE}: specify either "device", "hwaddr", "kernelpath" or "pciBusID"'
        )
    if conf.hwaddr:
        try:
            mac_bytes(conf.hwaddr)
        except DataplaneError as exc:
            raise fields.error("hwaddr", f"is not a MAC address: {conf.hwaddr!r}") from exc
    if conf.kernelpath and not conf.kernelpath.startswith("/sys/devices/"):
        raise fields.error("kernelpath", "must be absolute and begin with /sys/devices/")
    if conf.pci_bus_id and "/" in conf.pci_bus_id:
        raise fields.error("pciBusID", f"is not a PCI address: {conf.pci_bus_id!r}")
    return conf


# -- finding the device ----------------------------------------------------------------


def sysfs_device_name(conf: HostDeviceConf) -> str:
    """The network device under ``kernelpath`` or PCI address ``pci_bus_id`` (sysfs)."""
    if conf.kernelpath:
        net_dir = _sys_path(conf.kernelpath, "net")
    else:
        pci_dir = _sys_path("/sys/bus/pci/devices", conf.pci_bus_id)
        driver = os.path.basename(os.path.realpath(os.path.join(pci_dir, "driver")))
        if driver in USERSPACE_DRIVERS:
            raise UnsupportedFieldError(
                f"{TYPE}: PCI device {conf.pci_bus_id} is bound to {driver} (DPDK mode)",
                "devices without a kernel network interface are not supported yet",
            )
        net_dir = os.path.join(pci_dir, "net")
        if not os.path.isdir(net_dir):  # virtio: the netdev sits under virtioN/
            virtio = sorted(d for d in _listdir(pci_dir) if d.startswith("virtio"))
            net_dir = os.path.join(pci_dir, virtio[0], "net") if virtio else net_dir
    names = sorted(_listdir(net_dir))
    if not names:
        where = conf.kernelpath or f"PCI device {conf.pci_bus_id}"
        raise DeviceNotFoundError(f"{TYPE}: no network device under {where}", net_dir)
    return names[0]


def _sys_path(path: str, *parts: str) -> str:
    # "/sys/..." as written in configs, re-rooted at SYS_ROOT.
    return os.path.join(SYS_ROOT, os.path.relpath(path, "/sys"), *parts)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def find_device(host: Netns, conf: HostDeviceConf) -> Link:
    """The device on the host, as the config identifies it."""
    if conf.device:
        found = find_link(host, conf.device)
        what = f"device {conf.device!r}"
    elif conf.hwaddr:
        found = next((link for link in list_links(host) if link.mac == conf.hwaddr), None)
        what = f"device with hwaddr {conf.hwaddr}"
    else:
        name = sysfs_device_name(conf)
        found = find_link(host, name)
        what = f"device {name!r}"
    if found is None:
        raise DeviceNotFoundError(f"{TYPE}: failed to find host {what}", f"netns {host.name}")
    return found


# -- verbs -----------------------------------------------------------------------------


class HostDevice:
    """The host-device plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)
        with open_netns(request.netns) as pod, host_netns() as host:
            device = find_device(host, conf)
            if find_link(pod, request.ifname) is not None:
                raise LinkExistsError(
                    f"cannot move {device.name!r} into the pod",
                    interface=request.ifname,
                    netns=pod.name,
                )
            with contextlib.ExitStack() as undo:
                moved = _move_in(host, pod, device, request.ifname, undo)
                interface = Interface(
                    request.ifname,
                    moved.mac or "",
                    moved.mtu,
                    request.netns,
                    pci_id=conf.pci_bus_id,
                )
                result = Result(request.config.cni_version, (interface,))
                if lower.has_ipam(request):
                    ipam = ipam_add(request)
                    undo.callback(_quietly, ipam_del, request)
                    if not ipam.ips:
                        raise CNIError(f"{TYPE}: IPAM plugin returned missing IP config")
                    result = assign_to_interface(ipam, (interface,), 0, request.config.cni_version)
                    configure_interface(pod, request.ifname, result, send_announcements=False)
                    lower.announce_addresses(pod, request.ifname, result)
                undo.pop_all()
        dns = lower.config_dns(request)
        return result._replace(dns=dns) if dns else result

    def delete(self, request: skel.Request) -> None:
        conf = load_conf(request)
        mtu = _recorded_mtu(request)
        with host_netns() as host:
            returned = False
            if request.netns:
                with contextlib.suppress(NetnsNotFoundError), open_netns(request.netns) as pod:
                    returned = _move_out(pod, host, request.ifname, mtu)
            if not returned:
                # Already back on the host: the kernel returned it when the pod's
                # namespace went away, or an earlier DEL did.
                _rename_returned(host, conf, mtu)
        if lower.has_ipam(request):
            ipam_del(request)

    def check(self, request: skel.Request) -> None:
        load_conf(request)
        prev = require_prev_result(request)
        if lower.has_ipam(request):
            ipam_check(request)
        if not any(
            i.name == request.ifname and i.sandbox == request.netns for i in prev.interfaces
        ):
            raise InterfaceDriftError(
                f"no interface {request.ifname!r} in sandbox {request.netns} in prevResult"
            )
        with open_netns(request.netns) as pod:
            found = find_link(pod, request.ifname)
            if found is None:
                raise InterfaceDriftError(f"interface {request.ifname!r} is missing from the pod")
            if not found.alias:
                raise InterfaceDriftError(
                    f"interface {request.ifname!r} has no alias: its host name is lost"
                )
            check_interface(pod, request.ifname, prev)

    def status(self, request: skel.Request) -> None:
        conf = load_conf(request)
        with host_netns() as host:
            try:
                find_device(host, conf)
            except DeviceNotFoundError as exc:
                raise PluginNotAvailableError(exc.msg, exc.details) from exc
        if lower.has_ipam(request):
            delegate(ipam_type(request), "STATUS", request)

    def gc(self, request: skel.Request) -> None:
        conf = load_conf(request)
        with host_netns() as host:
            _rename_returned(host, conf, None)
        lower.gc(request)


def _move_in(
    host: Netns, pod: Netns, device: Link, ifname: str, undo: contextlib.ExitStack
) -> Link:
    """Record the host name in the alias, move into the pod as ``ifname``, bring it up."""
    original_alias = device.alias
    if device.up:  # a device is renamed only while down
        set_link(host, device, up=False)
        undo.callback(_quietly, set_link, host, device.name, up=True)
    set_alias(host, device, device.name)
    undo.callback(_quietly, set_alias, host, device.name, original_alias)
    moved = move_link(host, device, pod, new_name=ifname)
    undo.callback(_quietly, _move_back, pod, host, ifname, device.name)
    set_link(pod, moved, up=True)
    return find_link(pod, ifname) or moved


def _move_back(pod: Netns, host: Netns, ifname: str, name: str) -> None:
    set_link(pod, ifname, up=False)
    move_link(pod, ifname, host, new_name=name)


def _move_out(pod: Netns, host: Netns, ifname: str, mtu: int | None) -> bool:
    """Return the pod's ``ifname`` to the host under its alias; False when it is not there."""
    device = find_link(pod, ifname)
    if device is None:
        return False
    name = device.alias
    if not name:
        raise CNIError(
            f"{TYPE}: cannot return {ifname!r} to the host: it has no alias naming its host name",
            f"netns {pod.name}",
        )
    set_link(pod, device, up=False)
    # move_link refuses (before moving anything) when the name is taken on the host,
    # so a failed DEL leaves the device in the pod, ready for the retry.
    returned = move_link(pod, device, host, new_name=name)
    if mtu is not None and returned.mtu != mtu:
        set_link(host, returned, mtu=mtu)
    return True


def _rename_returned(host: Netns, conf: HostDeviceConf, mtu: int | None) -> None:
    """Give a device the kernel returned to the host its original name back (its alias)."""
    for link in list_links(host):
        alias = link.alias
        if not alias or alias == link.name or not _is_configured(link, alias, conf):
            continue
        if find_link(host, alias) is not None:
            raise LinkExistsError(
                f"cannot rename returned device {link.name!r} back: name taken",
                interface=alias,
                netns=host.name,
            )
        set_link(host, link, up=False)
        set_link(host, link, name=alias, mtu=mtu if mtu is not None and mtu != link.mtu else None)


def _is_configured(link: Link, alias: str, conf: HostDeviceConf) -> bool:
    if conf.device:
        return alias == conf.device
    if conf.hwaddr:
        return link.mac == conf.hwaddr
    with contextlib.suppress(CNIError):
        return alias == sysfs_device_name(conf)
    return False


def _recorded_mtu(request: skel.Request) -> int | None:
    """The device's MTU when ADD moved it in, from the cached result (1.1.0 results)."""
    prev = request.config.prev_result
    if prev is None:
        return None
    for interface in prev.interfaces:
        if interface.name == request.ifname and interface.sandbox:
            return interface.mtu
    return None


def _quietly(undo: Any, *args: Any, **kwargs: Any) -> None:
    # Rolling back must never hide the error that caused it.
    with contextlib.suppress(Exception):
        undo(*args, **kwargs)


PLUGIN = HostDevice()


def main() -> NoReturn:
    skel.main(PLUGIN)
