"""``multinic ipam``: look at and tidy the cluster-wide IPAM store.

``ls`` lists pools, ``usage`` draws a bar per pool, ``show POOL`` lists its
blocks and addresses, ``release`` frees one attachment's addresses, ``gc``
frees every attachment of a network not in a keep list (or all of them, asked
for by ``--all``) and gives back empty blocks. Tables are for people;
``--json`` is for programs.

Inspection never writes: the SQLite file is opened read-only, and a file that
is not a multinic store is refused untouched. The destructive commands take
``--dry-run``, and a name that matches nothing is an error, not a silent no-op:
a typo must not look like success, nor make gc release what was meant to stay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from multinic.cli.options import given, seconds

if TYPE_CHECKING:  # the IPAM modules load when a command runs, not with `multinic`
    from multinic.ipam import blocks
    from multinic.ipam.store import Store

DEFAULT_DB = "/var/lib/multinic/ipam.db"


class IpamContext:
    """Which store the commands read: SQLite by default, etcd when endpoints are given,
    the Kubernetes API when a kubeconfig is."""

    def __init__(
        self,
        db: str,
        etcd: tuple[str, ...],
        prefix: str,
        timeout: float,
        kubeconfig: str | None = None,
        scope: str = "",
    ) -> None:
        self.db, self.etcd, self.prefix, self.timeout = db, etcd, prefix, timeout
        self.kubeconfig, self.scope = kubeconfig, scope

    def open(self, *, read_only: bool = True) -> Store:
        """The store; SQLite read-only unless a command changes it (and never created here)."""
        from multinic.cni.errors import CNIError
        from multinic.ipam.store import StoreError

        try:
            if self.kubeconfig is not None:
                from multinic.ipam.kube_store import KubeStore

                return KubeStore.connect(
                    self.kubeconfig, timeout=min(self.timeout, 10.0), scope=self.scope
                )
            if self.etcd:
                from multinic.ipam.etcd_store import EtcdStore

                return EtcdStore(list(self.etcd), prefix=self.prefix)
            if not Path(self.db).is_file():
                raise click.ClickException(f"no IPAM database at {self.db}")
            from multinic.ipam.sqlite_store import SQLiteStore

            return SQLiteStore(self.db, read_only=read_only)
        except (StoreError, CNIError) as exc:
            raise click.ClickException(str(exc)) from exc

    def deadline(self) -> float:
        from multinic.ipam.store import deadline_after

        return deadline_after(self.timeout)


pass_ipam = click.make_pass_decorator(IpamContext)


@click.group()
@click.option(
    "--db",
    envvar="MULTINIC_IPAM_DB",
    default=DEFAULT_DB,
    show_default=True,
    help="SQLite store (env MULTINIC_IPAM_DB).",
)
@click.option(
    "--etcd",
    multiple=True,
    envvar="MULTINIC_ETCD_ENDPOINTS",
    help="etcd endpoint, repeatable (env MULTINIC_ETCD_ENDPOINTS, space-separated).",
)
@click.option("--prefix", default="/multinic/ipam/", show_default=True, help="etcd key prefix.")
@click.option(
    "--kubeconfig",
    envvar="MULTINIC_KUBECONFIG",
    type=click.Path(dir_okay=False),
    help="The Kubernetes store of this cluster (env MULTINIC_KUBECONFIG).",
)
@click.option("--scope", default="", help="The Kubernetes store's scope (its store.scope).")
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    callback=seconds,
    help="Seconds for one command.",
)
@click.pass_context
def ipam(
    ctx: click.Context,
    db: str,
    etcd: tuple[str, ...],
    prefix: str,
    kubeconfig: str | None,
    scope: str,
    timeout: float,
) -> None:
    """Cluster-wide IP address management (multinic-ipam's store)."""
    chosen = [
        n
        for n, on in (("--db", given(ctx, "db")), ("--etcd", etcd), ("--kubeconfig", kubeconfig))
        if on
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} are mutually exclusive", ctx)
    if not etcd and given(ctx, "prefix"):
        raise click.UsageError("--prefix is an etcd key prefix: it needs --etcd", ctx)
    if kubeconfig is None and scope:
        raise click.UsageError("--scope is the Kubernetes store's: it needs --kubeconfig", ctx)
    ctx.obj = IpamContext(db, etcd, prefix, timeout, kubeconfig, scope)


def _with_store(context: IpamContext, work: Any, *, writes: bool = False) -> Any:
    from multinic.cni.errors import CNIError
    from multinic.ipam.store import StoreError

    store = context.open(read_only=not writes)
    try:
        return work(store, context.deadline())
    except (CNIError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def _pools(context: IpamContext) -> list[blocks.PoolState]:
    from multinic.ipam import blocks

    def read(store: Store, deadline: float) -> list[blocks.PoolState]:
        found = [blocks.pool_state(store, p, deadline) for p in blocks.pool_ids(store, deadline)]
        return [s for s in found if s is not None]

    result: list[blocks.PoolState] = _with_store(context, read)
    return result


def _count(n: int) -> str:
    # An IPv6 /64 holds 2**64 addresses: digits nobody reads.
    return str(n) if n < 10**9 else f"{n:.2e}"


def _summary(state: blocks.PoolState) -> dict[str, Any]:
    capacity = state.capacity
    used = len(state.held)
    return {
        "pool": state.id,
        "range": str(state.range),
        "block_prefixlen": state.prefixlen,
        "blocks": len(state.blocks),
        "nodes": sorted(set(state.blocks.values())),
        "used": used,
        "capacity": capacity,
        "percent": round(100.0 * used / capacity, 2) if capacity else 100.0,
    }


@ipam.command("ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@pass_ipam
def ls_command(context: IpamContext, as_json: bool) -> None:
    """List pools: range, blocks, nodes and how full they are."""
    summaries = [_summary(s) for s in _pools(context)]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    from multinic.cli import render

    table = render.table(
        "IPAM pools",
        ("pool", "range", "block", "blocks", "nodes", "used", "capacity", "%"),
        right=("used", "capacity", "%"),
    )
    for s in summaries:
        render.add_row(
            table,
            s["pool"],
            s["range"],
            f"/{s['block_prefixlen']}",
            str(s["blocks"]),
            str(len(s["nodes"])),
            str(s["used"]),
            _count(s["capacity"]),
            f"{s['percent']:.1f}",
        )
    render.print_table(render.console(), table)


@ipam.command("usage")
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@pass_ipam
def usage_command(context: IpamContext, as_json: bool) -> None:
    """Utilisation: a table with a bar per pool."""
    summaries = [_summary(s) for s in _pools(context)]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    from rich.progress_bar import ProgressBar

    from multinic.cli import render

    table = render.table("IPAM utilisation", ("pool", "used", "", "%"), right=("used", "%"))
    for s in summaries:
        bar = ProgressBar(total=max(s["capacity"], 1), completed=s["used"], width=30)
        used = f"{s['used']}/{_count(s['capacity'])}"
        render.add_row(table, s["pool"], used, bar, f"{s['percent']:.1f}")
    render.print_table(render.console(), table)


@ipam.command("show")
@click.argument("pool")
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@pass_ipam
def show_command(context: IpamContext, pool: str, as_json: bool) -> None:
    """One pool's blocks and every address it holds (POOL as `ls` prints it)."""
    from multinic.ipam import blocks

    state = _with_store(context, lambda store, deadline: blocks.pool_state(store, pool, deadline))
    if state is None:
        raise click.ClickException(f"no pool {pool!r} (see `multinic ipam ls`)")
    doc = {
        **_summary(state),
        "block_list": [
            {"block": str(b), "node": n, "used": state.used_in(b)}
            for b, n in sorted(state.blocks.items(), key=lambda item: int(item[0].network_address))
        ],
        "addresses": [
            {
                "address": str(h.address),
                "block": str(h.block),
                "node": h.node,
                "network": h.owner.network,
                "containerID": h.owner.container_id,
                "ifname": h.owner.ifname,
            }
            for h in state.held
        ],
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    from multinic.cli import render

    console = render.console()
    render.line(
        console,
        f"pool {doc['pool']}: range {doc['range']}, blocks /{doc['block_prefixlen']}, "
        f"{doc['used']}/{doc['capacity']} used",
    )
    block_table = render.table("blocks", ("block", "node", "used"), right=("used",))
    for b in doc["block_list"]:
        render.add_row(block_table, b["block"], b["node"], b["used"])
    render.print_table(console, block_table)
    held_table = render.table("addresses", ("address", "node", "network", "containerID", "ifname"))
    for a in doc["addresses"]:
        render.add_row(
            held_table, a["address"], a["node"], a["network"], a["containerID"], a["ifname"]
        )
    render.print_table(console, held_table)


@ipam.command("release")
@click.argument("network")
@click.argument("container_id")
@click.argument("ifname")
@click.option("--dry-run", is_flag=True, help="Show what would be released; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@pass_ipam
def release_command(
    context: IpamContext, network: str, container_id: str, ifname: str, dry_run: bool, as_json: bool
) -> None:
    """Release what one attachment (NETWORK CONTAINER_ID IFNAME) holds.

    A network or attachment that holds nothing is an error (exit 1): a typo
    must not look like a release.
    """
    from multinic.cli import ipam_cleanup
    from multinic.ipam import blocks

    owner = blocks.Owner(network, container_id, ifname)

    def work(store: Store, deadline: float) -> tuple[blocks.Reservation, ...]:
        ipam_cleanup.attachments_of(store, network, deadline)
        if dry_run:
            return blocks.lookup(store, owner, deadline)
        return blocks.release(store, owner, deadline)

    released = _with_store(context, work, writes=not dry_run)
    if not released:
        raise click.ClickException(
            f"network {network!r} has no attachment {container_id}/{ifname}: nothing released"
        )
    addresses = [str(r.address) for r in released]
    if as_json:
        click.echo(json.dumps({"released": addresses, "dry_run": dry_run}))
    else:
        click.echo(f"{'would release' if dry_run else 'released'} {', '.join(addresses)}")


@ipam.command("gc")
@click.option("--network", help="Release this network's attachments not kept with --keep.")
@click.option("--keep", multiple=True, metavar="CONTAINER_ID/IFNAME", help="Repeatable.")
@click.option(
    "--all", "release_all", is_flag=True, help="With --network and no --keep: release every one."
)
@click.option("--empty-blocks", is_flag=True, help="Give back blocks that hold no address.")
@click.option(
    "--pods",
    "gone_pods",
    is_flag=True,
    help="(--kubeconfig) Release reservations whose pod no longer exists.",
)
@click.option(
    "--grace",
    type=float,
    default=300.0,
    show_default=True,
    callback=seconds,
    help="With --pods: keep reservations younger than this (pods still starting).",
)
@click.option("--dry-run", is_flag=True, help="Show what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@pass_ipam
def gc_command(
    context: IpamContext,
    network: str | None,
    keep: tuple[str, ...],
    release_all: bool,
    empty_blocks: bool,
    gone_pods: bool,
    grace: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Release leaked reservations (as CNI GC does) and give back empty blocks.

    Releasing needs the attachments to keep (--keep) or --all: without either,
    gc would free every live address of the network at once. With the
    Kubernetes store, --pods releases what pods that no longer exist (by
    namespace, name and UID) hold, except reservations younger than --grace.
    """
    from multinic.cli import ipam_cleanup

    _check_gc_options(network, keep, release_all, empty_blocks or gone_pods)
    if gone_pods and context.kubeconfig is None:
        raise click.UsageError("--pods asks the Kubernetes API: it needs --kubeconfig")
    kept = ipam_cleanup.parse_keep(keep)

    def collect(store: Store, deadline: float) -> dict[str, Any]:
        report: dict[str, Any] = {"released": [], "blocks": [], "dry_run": dry_run}
        if network is not None:
            for owner in ipam_cleanup.to_collect(store, network, kept, deadline):
                if not dry_run:
                    _release_one(store, owner, deadline)
                report["released"].append(f"{owner.container_id}/{owner.ifname}")
        if gone_pods:
            for owner in ipam_cleanup.pods_gone(store, grace, deadline):
                if not dry_run:
                    _release_one(store, owner, deadline)
                report["released"].append(f"{owner.network} {owner.container_id}/{owner.ifname}")
        sweep = getattr(store, "sweep", None)
        if sweep is not None and not dry_run:
            report["transactions"] = sweep(deadline=deadline)
        if empty_blocks:
            report["blocks"] = [f"{p} {b}" for p, b in _empty_blocks(store, deadline, dry_run)]
        return report

    report = _with_store(context, collect, writes=not dry_run)
    if as_json:
        click.echo(json.dumps(report))
        return
    verb = "would release" if dry_run else "released"
    click.echo(f"{verb} {len(report['released'])} attachment(s)")
    for item in report["released"]:
        click.echo(f"  {item}")
    if empty_blocks:
        verb = "would give back" if dry_run else "gave back"
        click.echo(f"{verb} {len(report['blocks'])} empty block(s)")
        for item in report["blocks"]:
            click.echo(f"  {item}")


def _check_gc_options(
    network: str | None, keep: tuple[str, ...], release_all: bool, empty_blocks: bool
) -> None:
    if network is None and not empty_blocks:
        raise click.UsageError("say what to collect: --network NAME, --empty-blocks and/or --pods")
    if network is None and (keep or release_all):
        raise click.UsageError("--keep and --all need --network")
    if keep and release_all:
        raise click.UsageError("--keep and --all exclude each other")
    if network is not None and not keep and not release_all:
        raise click.UsageError(
            f"gc --network {network} would release every attachment of it: name those to "
            "keep with --keep CONTAINER_ID/IFNAME, or say --all (try --dry-run first)"
        )


def _release_one(store: Store, owner: blocks.Owner, deadline: float) -> None:
    from multinic.ipam import blocks

    blocks.release(store, owner, deadline)


def _empty_blocks(store: Store, deadline: float, dry_run: bool) -> list[tuple[str, Any]]:
    from multinic.cli import ipam_cleanup
    from multinic.ipam import blocks

    if dry_run:
        return ipam_cleanup.empty_blocks(store, deadline)
    return [
        (pool_id, block)
        for pool_id in blocks.pool_ids(store, deadline)
        for block in blocks.release_empty_blocks(store, pool_id, deadline)
    ]
