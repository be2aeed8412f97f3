"""``multinic cni``: drive plugin chains like the reference ``cnitool``.

Reads the same environment as cnitool: NETCONFPATH (config dir, default
/etc/cni/net.d), CNI_PATH (plugin dirs), CNI_IFNAME (default eth0), CNI_ARGS
(K=V;K2=V2) and CAP_ARGS (a JSON object of capability arguments). The container
id is derived from the netns path as cnitool does, unless CNI_CONTAINERID is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from multinic.cli.options import seconds
from multinic.cni import jsontext
from multinic.cni.args import parse_cni_args
from multinic.cni.cache import DEFAULT_CACHE_DIR
from multinic.cni.conffiles import DEFAULT_CONFIG_DIR, load_all, load_network
from multinic.cni.config import Attachment, NetworkConfigList
from multinic.cni.errors import (
    CNIError,
    IncompatibleVersionError,
    InvalidEnvironmentError,
    UnknownContainerError,
)
from multinic.cni.invoke import PluginExecutor
from multinic.cni.runtime import Runtime, RuntimeConf

NAMED_NETNS_DIR = Path("/var/run/netns")


class CniContext:
    """What every ``multinic cni`` command reads from options and environment."""

    def __init__(self, conf_dir: Path, plugin_path: str, cache_dir: Path, timeout: float) -> None:
        self.conf_dir = conf_dir
        dirs = [Path(p) for p in plugin_path.split(":") if p]
        self.runtime = Runtime(dirs, cache_dir, PluginExecutor(timeout=timeout))

    def network(self, name: str) -> NetworkConfigList:
        return load_network(self.conf_dir, name)


pass_context = click.make_pass_decorator(CniContext)


@click.group()
@click.option(
    "--conf-dir",
    envvar="NETCONFPATH",
    default=str(DEFAULT_CONFIG_DIR),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Network config dir (env NETCONFPATH).",
)
@click.option(
    "--plugin-path",
    envvar="CNI_PATH",
    default="/opt/cni/bin",
    show_default=True,
    help="Colon-separated plugin dirs (env CNI_PATH).",
)
@click.option(
    "--cache-dir",
    envvar="CNI_CACHE_DIR",
    default=str(DEFAULT_CACHE_DIR),
    show_default=True,
    type=click.Path(path_type=Path),
    help="libcni-compatible result cache dir (env CNI_CACHE_DIR).",
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    callback=seconds,
    help="Seconds one plugin call may take before it is killed.",
)
@click.pass_context
def cni(
    ctx: click.Context, conf_dir: Path, plugin_path: str, cache_dir: Path, timeout: float
) -> None:
    """Run a network config list against a namespace, like cnitool."""
    ctx.obj = CniContext(conf_dir, plugin_path, cache_dir, timeout)


def _runtime_conf(netns: str, *, must_exist: bool = True) -> RuntimeConf:
    """The attachment from NETNS and the environment; ADD and CHECK need the namespace."""
    path = resolve_netns(netns)
    if must_exist and not Path(path).exists():
        raise UnknownContainerError("network namespace not found", f"no namespace at {path}")
    return RuntimeConf(
        container_id=os.environ.get("CNI_CONTAINERID") or cnitool_container_id(path),
        netns=path,
        ifname=os.environ.get("CNI_IFNAME") or "eth0",
        args=parse_cni_args(os.environ.get("CNI_ARGS", "")),
        capability_args=_capability_args(),
    )


def _capability_args() -> dict[str, Any]:
    try:
        # encode(): bytes that are not UTF-8 reach us as surrogates, which json.loads takes.
        capability_args = jsontext.loads((os.environ.get("CAP_ARGS") or "{}").encode())
    except ValueError as exc:  # bad JSON, too deep, or not UTF-8 (UnicodeError is one)
        raise click.UsageError(f"CAP_ARGS is not valid JSON: {exc}") from exc
    if not isinstance(capability_args, dict):
        raise click.UsageError("CAP_ARGS must be a JSON object")
    return capability_args


def resolve_netns(netns: str) -> str:
    """An absolute netns path. A bare name (no '/') is an ``ip netns`` namespace under
    /var/run/netns, present or not (DEL may come after it is gone), never a file in
    the working directory; ``./name`` means that file."""
    try:
        netns.encode()
    except UnicodeEncodeError as exc:  # the cache and the runtime's JSON could not carry it
        raise InvalidEnvironmentError("netns path is not UTF-8", repr(netns)) from exc
    if netns in ("", ".", ".."):
        raise InvalidEnvironmentError("invalid netns", f"{netns!r} names no namespace")
    if "/" not in netns:
        return str(NAMED_NETNS_DIR / netns)
    return str(Path(netns).absolute())


def cnitool_container_id(netns_path: str) -> str:
    """cnitool's id: ``cnitool-`` and the first 10 bytes of SHA-512(netns path) in hex."""
    return "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except CNIError as err:
        click.echo(f"multinic: CNI error {err.code}: {err}", err=True)
        sys.exit(1)


@cni.command()
@click.argument("network")
@click.argument("netns")
@pass_context
def add(ctx: CniContext, network: str, netns: str) -> None:
    """ADD the container in NETNS to NETWORK and print the result."""
    result = _run(lambda: ctx.runtime.add(ctx.network(network), _runtime_conf(netns)))
    click.echo(json.dumps(result.to_dict(), indent=4))


@cni.command()
@click.argument("network")
@click.argument("netns")
@pass_context
def check(ctx: CniContext, network: str, netns: str) -> None:
    """CHECK the attachment of NETNS to NETWORK against the cached result."""
    _run(lambda: ctx.runtime.check(ctx.network(network), _runtime_conf(netns)))


@cni.command(name="del")
@click.argument("network")
@click.argument("netns")
@pass_context
def delete(ctx: CniContext, network: str, netns: str) -> None:
    """DEL the attachment of NETNS to NETWORK (succeeds again when already gone).

    With nothing cached for it and no namespace NETNS, the plugins still get the
    DEL (they may hold an address for that container id), and a warning says the
    name may be mistyped: failing would leave such an address held forever.
    """
    _run(lambda: _delete(ctx, ctx.network(network), _runtime_conf(netns, must_exist=False)))


def _delete(ctx: CniContext, net: NetworkConfigList, rt: RuntimeConf) -> None:
    cached = ctx.runtime.cache.load_raw(net.name, rt.container_id, rt.ifname)
    ctx.runtime.delete(net, rt)
    if cached is None and not Path(rt.netns).exists():
        click.echo(
            f"multinic: warning: nothing was cached for {net.name!r} "
            f"{rt.container_id}/{rt.ifname} and there is no namespace at {rt.netns}; "
            "the plugins were asked to delete anyway. If the name is mistyped, "
            "nothing was deleted.",
            err=True,
        )


@cni.command()
@click.argument("network")
@click.argument("netns", required=False)
@click.option(
    "--valid",
    "valid",
    multiple=True,
    metavar="CONTAINERID/IFNAME",
    help="An attachment to keep; repeat. None given: every cached one is stale.",
)
@pass_context
def gc(ctx: CniContext, network: str, netns: str | None, valid: tuple[str, ...]) -> None:
    """GC NETWORK: DEL cached attachments not listed as valid, then GC every plugin."""
    del netns  # accepted for cnitool compatibility; GC is not about one namespace
    keep = [_attachment(text) for text in valid]
    _run(lambda: ctx.runtime.gc(ctx.network(network), keep))


@cni.command()
@click.argument("network")
@click.argument("netns", required=False)
@pass_context
def status(ctx: CniContext, network: str, netns: str | None) -> None:
    """STATUS of every plugin of NETWORK (exit 1 when one is not ready)."""
    del netns  # accepted for cnitool compatibility
    _run(lambda: ctx.runtime.status(ctx.network(network)))
    click.echo(f"{network}: ready")


@cni.command()
@click.argument("network")
@pass_context
def validate(ctx: CniContext, network: str) -> None:
    """Check that every plugin of NETWORK is installed and supports its version."""
    net: NetworkConfigList = _run(lambda: ctx.network(network))
    caps = _run(lambda: ctx.runtime.validate(net))
    version = net.negotiated_version()
    click.echo(f"{network}: cniVersion {version}, capabilities {sorted(caps)}")


def _attachment(text: str) -> Attachment:
    container_id, sep, ifname = text.partition("/")
    if not sep or not container_id or not ifname:
        raise click.BadParameter(f"{text!r} is not CONTAINERID/IFNAME", param_hint="--valid")
    return Attachment(container_id, ifname)


@cni.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@pass_context
def list_networks(ctx: CniContext, as_json: bool) -> None:
    """List the networks in the config dir, in the order a runtime reads them.

    The network of the first valid file by name is marked default: it is the
    one CRI runtimes (containerd, CRI-O) give pods. Files that fail to parse are
    listed as problems (exit 1).
    """
    networks, problems = _run(lambda: load_all(ctx.conf_dir))
    # CRI runtimes take the first valid file by name as the default network.
    by_file = sorted(networks, key=lambda net: net.source.name if net.source else "")
    default = by_file[0] if by_file else None
    rows = [_network_row(net, first=net is default) for net in networks]
    if as_json:
        click.echo(json.dumps({"networks": rows, "problems": [str(p) for p in problems]}, indent=2))
    else:
        _print_network_table(ctx.conf_dir, rows, [str(p) for p in problems])
    if problems:
        sys.exit(1)


def _network_row(net: NetworkConfigList, *, first: bool) -> dict[str, Any]:
    try:
        version = net.negotiated_version()
    except IncompatibleVersionError as err:
        version = f"unusable: {err.details}"
    return {
        "name": net.name,
        "file": str(net.source) if net.source else "",
        "cniVersion": version,
        "plugins": [plugin.type for plugin in net.plugins],
        "default": first,
    }


def _print_network_table(conf_dir: Path, rows: list[dict[str, Any]], problems: list[str]) -> None:
    from multinic.cli import render  # rich only for people; keeps `multinic cni add` lean

    table = render.table(f"networks in {conf_dir}", ("name", "cniVersion", "plugins", "file"))
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else row["name"]
        render.add_row(table, name, row["cniVersion"], " -> ".join(row["plugins"]), row["file"])
    console = render.console()
    render.print_table(console, table)
    for problem in problems:
        render.line(console, ("problem:", "bold red"), " ", problem)
