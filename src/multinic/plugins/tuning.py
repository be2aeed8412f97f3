"""multinic-tuning: sysctls and link attributes of the pod's interface, restored on DEL.

A meta plugin (config as the reference ``tuning``): chained after an interface
plugin, it changes the interface named by CNI_IFNAME in the pod and passes the
previous result through (with the new MAC). Fields: ``sysctl`` (key -> value,
``IFNAME`` in a key stands for CNI_IFNAME), ``mac`` (also CNI_ARGS ``MAC=``, the
``mac`` capability ``runtimeConfig.mac`` and ``args.cni.mac``, in increasing
precedence), ``promisc`` (true turns it on), ``mtu``, ``txQLen``, ``allmulti``
(true/false), ``dataDir`` (where the originals are kept), and ``args.cni``
overrides of each as in the reference.

Unlike the reference, which lets any ``net.*`` key through, sysctls must be on
an allowlist of keys the kernel keeps per network namespace (see
:func:`sysctl_target`): a key that is not namespaced would change the host.

ADD records every original value in ``<dataDir>/<containerID>-<ifname>.json``
(written atomically, before anything changes); a failure part-way restores them
and removes the file. DEL restores them (sysctls too, which the reference does
not) and removes the file; a gone namespace or interface, or a second DEL, is
fine. CHECK compares every configured value with the pod and names the drift.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping

from multinic.cni import skel
from multinic.cni.errors import CNIError, InvalidConfigError
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    DataplaneError,
    Link,
    Netns,
    NetnsNotFoundError,
    find_link,
    get_link,
    open_netns,
    read_sysctl,
    set_link,
    write_sysctl,
)
from multinic.dataplane.links import mac_bytes
from multinic.plugins.attach import CHAINED_NEEDS_PREV, InterfaceDriftError, require_prev_result
from multinic.plugins.fields import Fields, plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

TYPE = "multinic-tuning"
DEFAULT_DATA_DIR = "/var/lib/cni/multinic-tuning"
#: The reference's optional allowlist: one regular expression a line. When the
#: file exists a key must also match one of them (the built-in list still applies).
ALLOWLIST_FILE = "/etc/cni/tuning/allowlist.conf"

#: Per-interface directories: ``net.<family>.<dir>.<interface>.<leaf>``.
PER_INTERFACE = frozenset(
    {("ipv4", "conf"), ("ipv6", "conf"), ("ipv4", "neigh"), ("ipv6", "neigh")}
)

#: Keys outside the per-interface directories that the kernel keeps per network
#: namespace (Kubernetes' "safe" network sysctls and a few routing/TCP ones).
#: Keys such as net.core.rmem_max or net.ipv4.tcp_mem are global to the host.
NAMESPACED_GLOBALS = frozenset(
    {
        "net.core.somaxconn",
        "net.ipv4.fib_multipath_hash_policy",
        "net.ipv4.icmp_echo_ignore_all",
        "net.ipv4.icmp_echo_ignore_broadcasts",
        "net.ipv4.icmp_ratelimit",
        "net.ipv4.ip_default_ttl",
        "net.ipv4.ip_forward",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_nonlocal_bind",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_retries2",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_sack",
        "net.ipv4.tcp_syn_retries",
        "net.ipv4.tcp_synack_retries",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_timestamps",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_window_scaling",
        "net.ipv4.tcp_wmem",
        "net.ipv6.fib_multipath_hash_policy",
        "net.unix.max_dgram_qlen",
    }
)


class Sysctl(NamedTuple):
    """One configured sysctl: the key as written, the slash-form key written, the value."""

    key: str
    path_key: str
    value: str


class TuningConf(NamedTuple):
    """The plugin's own fields, with CNI_ARGS / runtimeConfig / args.cni applied."""

    sysctls: tuple[Sysctl, ...]
    mac: str | None
    promisc: bool
    mtu: int | None
    txqlen: int | None
    allmulti: bool | None
    data_dir: str


# -- config ----------------------------------------------------------------------------


def sysctl_target(key: str, ifname: str) -> str:
    """The slash-form key ``key`` writes, or InvalidConfigError if it is not allowed.

    ``IFNAME`` stands for the pod interface. In the dotted form the interface of a
    per-interface key is everything between the directory and the leaf, so
    ``net.ipv4.conf.eth0.100.rp_filter`` names ``eth0.100``; the slash form
    (``net/ipv4/conf/eth0.100/rp_filter``) says the same, as sysctl(8) allows.
    """
    key = key.replace("IFNAME", ifname, 1)
    parts = key.split("/") if "/" in key else key.split(".")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise _refused(key, "is not a sysctl key")
    if len(parts) >= 5 and parts[0] == "net" and (parts[1], parts[2]) in PER_INTERFACE:
        interface = ".".join(parts[3:-1])
        if "/" in key and len(parts) != 5:
            raise _refused(key, "is not a sysctl key")
        return "/".join(["net", parts[1], parts[2], interface, parts[-1]])
    if ".".join(parts) in NAMESPACED_GLOBALS:
        return "/".join(parts)
    raise _refused(
        key,
        "is not allowed: only net.ipv4/ipv6 conf/neigh keys of an interface and the "
        f"namespaced keys {', '.join(sorted(NAMESPACED_GLOBALS))}",
    )


def _refused(key: str, problem: str) -> InvalidConfigError:
    return InvalidConfigError(f"{TYPE}: sysctl {key!r} {problem}")


def _reference_allowlist() -> list[str] | None:
    try:
        with open(ALLOWLIST_FILE, encoding="utf-8") as file:
            return [line.strip() for line in file if line.strip()]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidConfigError(f"{TYPE}: cannot read {ALLOWLIST_FILE}", str(exc)) from exc


def _check_reference_allowlist(keys: list[str]) -> None:
    patterns = _reference_allowlist()
    if patterns is None:
        return
    for key in keys:
        try:
            allowed = any(re.search(p, key) for p in patterns)
        except re.error as exc:
            raise InvalidConfigError(f"{TYPE}: bad pattern in {ALLOWLIST_FILE}", str(exc)) from exc
        if not allowed:
            raise InvalidConfigError(
                f"{TYPE}: sysctl {key!r} is not allowed by {ALLOWLIST_FILE}",
                f"patterns: {patterns}",
            )


class _Duplicated(dict[str, object]):
    """A JSON object that had a key twice (the reference refuses duplicated sysctls)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    return _Duplicated(obj) if len(obj) != len(pairs) else obj


def _refuse_duplicate_sysctls(stdin: bytes) -> None:
    if b"sysctl" not in stdin:
        return  # the common case pays nothing
    try:
        obj = json.loads(stdin, object_pairs_hook=_pairs)
    except ValueError:
        return  # already parsed once by skel; cannot happen
    args = obj.get("args")
    cni = args.get("cni") if isinstance(args, dict) else None
    sections = [obj.get("sysctl"), cni.get("sysctl") if isinstance(cni, dict) else None]
    for section in sections:
        if isinstance(section, _Duplicated):
            raise InvalidConfigError(f"{TYPE}: duplicated sysctl keys are not allowed")


def _mac(value: str, where: str) -> str:
    try:
        mac_bytes(value)
    except DataplaneError as exc:
        raise InvalidConfigError(f"{TYPE}: invalid MAC address {value!r} ({where})") from exc
    return value.lower()


class _Raw(NamedTuple):
    sysctl: dict[str, str]
    mac: str
    promisc: bool
    mtu: int | None
    txqlen: int | None
    allmulti: bool | None


def _optional_bool(fields: Fields, key: str) -> bool | None:
    """true/false, or None when absent: allmulti false is a setting, not a default."""
    return None if fields.obj.get(key) is None else fields.boolean(key)


def _raw_fields(fields: Fields) -> _Raw:
    return _Raw(
        sysctl=fields.mapping_of_strings("sysctl"),
        mac=fields.string("mac"),
        promisc=fields.boolean("promisc"),
        mtu=fields.integer("mtu", low=0, high=2**31 - 1),
        txqlen=fields.integer("txQLen", low=0, high=2**32 - 1),
        allmulti=_optional_bool(fields, "allmulti"),
    )


def load_conf(request: skel.Request) -> TuningConf:
    """Parse and validate the config; refused sysctl keys are config errors (code 7)."""
    _refuse_duplicate_sysctls(request.stdin)
    fields = plugin_fields(request.config.raw, TYPE)
    base = _raw_fields(fields)
    sysctl, mac, promisc, mtu, txqlen, allmulti = base
    mac = dict(request.args).get("MAC") or mac
    mac = Fields(request.config.runtime_config, f"{TYPE}: runtimeConfig").string("mac") or mac
    override = _args_cni(fields)
    if override is not None:
        given = override.obj
        sysctl = {**sysctl, **override.mapping_of_strings("sysctl")}
        mac = override.string("mac") if "mac" in given else mac
        promisc = override.boolean("promisc") if "promisc" in given else promisc
        mtu = override.integer("mtu", low=0, high=2**31 - 1) if "mtu" in given else mtu
        txqlen = override.integer("txQLen", low=0, high=2**32 - 1) if "txQLen" in given else txqlen
        allmulti = _optional_bool(override, "allmulti") if "allmulti" in given else allmulti
    _check_reference_allowlist(list(sysctl))
    sysctls = tuple(Sysctl(k, sysctl_target(k, request.ifname), v) for k, v in sysctl.items())
    return TuningConf(
        sysctls=sysctls,
        mac=_mac(mac, "mac") if mac else None,
        promisc=promisc,
        mtu=mtu or None,  # 0 means unset, as in the reference
        txqlen=txqlen,
        allmulti=allmulti,
        data_dir=fields.path("dataDir") or DEFAULT_DATA_DIR,
    )


def _args_cni(fields: Fields) -> Fields | None:
    if "args" not in fields.obj:
        return None
    cni = fields.mapping("args").mapping("cni")
    return cni if cni.obj else None


# -- saved originals -------------------------------------------------------------------


def state_path(data_dir: str, container_id: str, ifname: str) -> str:
    """Where the originals of one attachment are kept."""
    return os.path.join(data_dir, f"{container_id}-{ifname}.json")


def load_state(path: str) -> dict[str, Any] | None:
    """The saved originals, or None when there are none (never saved, or already restored)."""
    try:
        with open(path, encoding="utf-8") as file:
            state = json.load(file)
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # unreadable (a torn disk, a hand edit): nothing can be restored from it
    except OSError as exc:
        raise CNIError(f"{TYPE}: cannot read saved originals {path}", str(exc)) from exc
    return state if isinstance(state, dict) else {}


def save_state(path: str, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a reader sees the old file or the new one)."""
    directory = os.path.dirname(path)
    partial = f"{path}.{os.getpid()}.partial"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(state, indent=1).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise CNIError(f"{TYPE}: cannot save originals to {path}", str(exc)) from exc


def remove_state(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def capture(ns: Netns, link: Link, conf: TuningConf, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The current value of everything ``conf`` changes; values in ``saved`` win.

    ``saved`` is what an earlier ADD of the same attachment recorded and never
    restored: those are the values from before any tuning.
    """
    sysctls = {s.path_key: read_sysctl(ns, s.path_key) for s in conf.sysctls}
    state: dict[str, Any] = {"ifname": link.name, "sysctl": sysctls}
    if conf.mac is not None:
        state["mac"] = link.mac
    if conf.mtu is not None:
        state["mtu"] = link.mtu
    if conf.promisc:
        state["promisc"] = link.promisc
    if conf.allmulti is not None:
        state["allmulti"] = link.allmulti
    if conf.txqlen is not None:
        state["txqlen"] = link.txqlen
    old_sysctls = saved.get("sysctl")
    if isinstance(old_sysctls, dict):
        sysctls.update({k: v for k, v in old_sysctls.items() if isinstance(v, str)})
    state.update({k: v for k, v in saved.items() if k not in ("sysctl", "ifname")})
    return state


def restore(ns: Netns, ifname: str, state: Mapping[str, Any]) -> list[str]:
    """Put back every saved value, in the reverse order of ADD; what could not be restored."""
    failed: list[str] = []
    link_attrs = {
        attr: state[attr]
        for attr in ("txqlen", "allmulti", "mtu", "promisc", "mac")
        if state.get(attr) is not None
    }
    for attr, value in link_attrs.items():
        try:
            set_link(ns, ifname, **{attr: value})
        except DataplaneError as exc:
            failed.append(f"{attr} {value}: {exc}")
    sysctls = state.get("sysctl") or {}
    for key in reversed(list(sysctls)):
        try:
            write_sysctl(ns, key, sysctls[key])
        except DataplaneError as exc:
            failed.append(f"sysctl {key}={sysctls[key]!r}: {exc}")
    return failed


# -- applying and checking -------------------------------------------------------------


def apply(ns: Netns, link: Link, conf: TuningConf) -> None:
    """Sysctls first (as the reference), then MAC, promisc, MTU, all-multicast, txqueuelen."""
    for sysctl in conf.sysctls:
        write_sysctl(ns, sysctl.path_key, sysctl.value)
    if conf.mac is not None:
        set_link(ns, link, mac=conf.mac)
    if conf.promisc:
        set_link(ns, link, promisc=True)
    if conf.mtu is not None:
        set_link(ns, link, mtu=conf.mtu)
    if conf.allmulti is not None:
        set_link(ns, link, allmulti=conf.allmulti)
    if conf.txqlen is not None:
        set_link(ns, link, txqlen=conf.txqlen)


def drift(ns: Netns, link: Link, conf: TuningConf) -> Iterator[str]:
    """Each configured value that is not what the pod has now."""
    for sysctl in conf.sysctls:
        current = read_sysctl(ns, sysctl.path_key)
        # The kernel writes "1024 65535" back as "1024\t65535": compare the fields.
        if current.split() != sysctl.value.split():
            yield f"sysctl {sysctl.key} is {current!r}, configured {sysctl.value!r}"
    wanted: list[tuple[str, object, object]] = [
        ("MAC", conf.mac, link.mac),
        ("MTU", conf.mtu, link.mtu),
        ("promisc", True if conf.promisc else None, link.promisc),
        ("allmulti", conf.allmulti, link.allmulti),
        ("txqueuelen", conf.txqlen, link.txqlen),
    ]
    for what, configured, now in wanted:
        if configured is not None and configured != now:
            yield f"{what} is {now}, configured {configured}"


def _with_mac(prev: Result, ifname: str, mac: str | None) -> Result:
    if mac is None:
        return prev
    interfaces = tuple(
        i._replace(mac=mac) if i.name == ifname and i.sandbox else i for i in prev.interfaces
    )
    return prev._replace(interfaces=interfaces)


class Tuning:
    """The tuning meta plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)
        prev = require_prev_result(request, CHAINED_NEEDS_PREV)
        path = state_path(conf.data_dir, request.container_id, request.ifname)
        with open_netns(request.netns) as ns:
            link = get_link(ns, request.ifname)
            originals = capture(ns, link, conf, load_state(path) or {})
            with contextlib.ExitStack() as undo:
                save_state(path, originals)
                undo.callback(remove_state, path)
                # Rolling back must not hide why ADD failed: restore() only reports.
                undo.callback(restore, ns, request.ifname, originals)
                apply(ns, link, conf)
                undo.pop_all()
        return _with_mac(prev, request.ifname, conf.mac)

    def delete(self, request: skel.Request) -> None:
        # Only dataDir matters here: a config that became invalid must not block DEL.
        data_dir = plugin_fields(request.config.raw, TYPE).string("dataDir") or DEFAULT_DATA_DIR
        path = state_path(data_dir, request.container_id, request.ifname)
        state = load_state(path)
        if state is None:
            return
        if request.netns:
            try:
                ns = open_netns(request.netns)
            except NetnsNotFoundError:
                pass  # the pod is gone, and its interface with it
            else:
                with ns:
                    _restore_or_fail(ns, request.ifname, state, path)
        remove_state(path)

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)
        require_prev_result(request, CHAINED_NEEDS_PREV)
        with open_netns(request.netns) as ns:
            link = get_link(ns, request.ifname)
            found = list(drift(ns, link, conf))
        if found:
            raise InterfaceDriftError(
                f"{TYPE}: interface {request.ifname!r} drifted from its tuning", "; ".join(found)
            )

    def status(self, request: skel.Request) -> None:
        # Nothing to be ready for; a config the plugin would refuse is worth saying.
        for key in plugin_fields(request.config.raw, TYPE).mapping_of_strings("sysctl"):
            sysctl_target(key, "IFNAME")

    def gc(self, request: skel.Request) -> None:
        """Nothing: saved originals are removed by DEL (file names carry no network)."""


def _restore_or_fail(ns: Netns, ifname: str, state: Mapping[str, Any], path: str) -> None:
    if find_link(ns, ifname) is None:
        return  # the interface left the pod: nothing to put back
    failed = restore(ns, ifname, state)
    if failed:
        # Keep the file: a retried DEL tries again.
        raise CNIError(f"{TYPE}: cannot restore {ifname!r} (kept {path})", "; ".join(failed))


PLUGIN = Tuning()


def main() -> NoReturn:
    skel.main(PLUGIN)
