"""Per-attachment nftables rules, written and removed with the ``nft`` tool.

The reference plugins keep iptables chains per container (``CNI-<hash>``); this
machine's kernel has nftables, so multinic keeps one table named ``multinic``
per family and tags every rule it adds with a comment naming the network, the
container and the interface. DEL and GC remove exactly the rules whose tag
they own; nothing else in the table is touched, and nothing outside it.

``nft`` runs through :func:`multinic.cni.spawn.run_executable` (no
``subprocess`` on a plugin's import path); a whole change is one ``nft -f -``
transaction, so concurrent plugins never see half of another's rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from multinic.cni.errors import CNIError
from multinic.cni.spawn import find_executable, run_executable
from multinic.records import NamedTuple

TABLE = "multinic"
#: Where Debian's nftables puts the tool: runtimes run plugins without PATH.
NFT_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
#: The kernel keeps at most 128 bytes of a rule's comment (NUL included).
MAX_COMMENT = 127
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class NftError(CNIError):
    """The nft tool is missing or refused a change; details carry its message."""


class Tag(NamedTuple):
    """Whose rule it is: one attachment of one network."""

    network: str
    container_id: str
    ifname: str

    def comment(self) -> str:
        """The rule comment: ``multinic net=N id=C if=I`` (long or odd parts hashed)."""
        net, cid, ifname = (_safe(part) for part in self)
        text = f"multinic net={net} id={cid} if={ifname}"
        if len(text) > MAX_COMMENT:
            text = f"multinic net={_digest(self.network)} id={cid} if={ifname}"
        if len(text) > MAX_COMMENT:
            text = (
                f"multinic net={_digest(self.network)} id={_digest(self.container_id)} if={ifname}"
            )
        return text

    def network_prefix(self) -> tuple[str, ...]:
        """The comment starts that mark any rule of this tag's network."""
        return (f"multinic net={_safe(self.network)} ", f"multinic net={_digest(self.network)} ")


class TaggedRule(NamedTuple):
    """A rule in multinic's table, as nft lists it."""

    family: str
    chain: str
    handle: int
    comment: str
    expr: list[object]


def _safe(part: str) -> str:
    return part if part and set(part) <= _SAFE else _digest(part)


def _digest(part: str) -> str:
    import hashlib  # only for names that do not fit a comment

    return "#" + hashlib.sha256(part.encode()).hexdigest()[:16]


def nft_path() -> str:
    """The nft executable; NftError when nftables is not installed."""
    search = tuple(os.environ.get("PATH", "").split(os.pathsep)) + NFT_DIRS
    path = find_executable("nft", tuple(d for d in search if d))
    if path is None:
        raise NftError("nft not found", f"install nftables; searched {', '.join(NFT_DIRS)}")
    return path


def run_nft(args: tuple[str, ...] = ("-f", "-"), script: str = "") -> bytes:
    """Run ``nft ARGS`` with ``script`` on stdin; its stdout, or NftError with its stderr."""
    path = nft_path()
    done = run_executable(path, {}, script.encode(), args=args)
    if done.status != 0:
        raise NftError("nft failed", done.stderr.decode(errors="replace").strip())
    return done.stdout


def apply(lines: Iterable[str]) -> None:
    """Apply ``lines`` of nft commands as one transaction."""
    script = "\n".join(lines) + "\n"
    try:
        run_nft(script=script)
    except NftError as exc:
        raise NftError(f"cannot apply nftables rules in table {TABLE}", exc.details) from exc


def list_rules(family: str, chain: str) -> list[TaggedRule]:
    """The rules of ``chain`` in multinic's ``family`` table (none when it does not exist)."""
    try:
        out = run_nft(("-j", "list", "chain", family, TABLE, chain))
    except NftError as exc:
        if "No such file or directory" in exc.details:
            return []
        raise
    rules = []
    for item in json.loads(out or b"{}").get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule is not None:
            rules.append(
                TaggedRule(
                    family,
                    chain,
                    int(rule["handle"]),
                    str(rule.get("comment", "")),
                    list(rule.get("expr", [])),
                )
            )
    return rules


def delete_rules(rules: Iterable[TaggedRule]) -> int:
    """Delete ``rules`` in one transaction; how many there were."""
    lines = [f"delete rule {r.family} {TABLE} {r.chain} handle {r.handle}" for r in rules]
    if lines:
        apply(lines)
    return len(lines)


def delete_tagged(family: str, chain: str, tag: Tag) -> int:
    """Delete every rule of ``chain`` carrying ``tag``; how many were deleted."""
    comment = tag.comment()
    for attempt in range(3):
        mine = [r for r in list_rules(family, chain) if r.comment == comment]
        try:
            return delete_rules(mine)
        except NftError:
            # A concurrent DEL of the same attachment removed one first: list again.
            if attempt == 2:
                raise
    return 0


def stale_rules(family: str, chain: str, network: Tag, keep: set[Tag]) -> list[TaggedRule]:
    """Rules of ``network`` (a Tag whose network counts) not tagged by an attachment in ``keep``."""
    kept = {tag.comment() for tag in keep}
    prefixes = network.network_prefix()
    return [
        r
        for r in list_rules(family, chain)
        if r.comment.startswith(prefixes) and r.comment not in kept
    ]
