"""What the CLI prints for people: values are data, never markup, and never broken.

The property tests print tables of arbitrary values through the same module
every command uses, at terminal widths from very narrow to wide, and look for
each value whole on one line. The command tests try the class on the real
commands (``cni ls``, ``ipam ls``/``show``/``usage``, ``plan``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from multinic.cli import render
from multinic.cli.main import cli
from tests.unit.ipam_cluster.test_plugin import conf, run
from tests.unit.plan.fabrics import dual_stack

#: Characters rich would read as markup, emoji codes or highlights, and address punctuation.
TRICKY = st.text(alphabet="[]/:\\ab cdefx0123.-=@#", min_size=1, max_size=40).filter(
    lambda s: s.strip() == s and s.strip()
)
VALUES = st.sampled_from(
    ["fd00:ab:cd::/64", "[/x]", "[red]x", ":smile:", "[bold]", "a:cd:b", "10.0.0.0/8"]
)


def printed(width: int, *rows: tuple[str, ...]) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, markup=False, emoji=False, highlight=False)
    table = render.table("t", [f"c{n}" for n in range(len(rows[0]))])
    for row in rows:
        render.add_row(table, *row)
    render.print_table(console, table)
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(TRICKY | VALUES, TRICKY | VALUES), min_size=1, max_size=4),
    st.integers(min_value=10, max_value=200),
)
def test_every_value_is_printed_whole_on_one_line(rows: list[tuple[str, str]], width: int) -> None:
    output = printed(width, *rows)
    lines = output.splitlines()
    for row in rows:
        for value in row:
            assert any(value in line for line in lines), (value, output)
    assert "…" not in output


@settings(max_examples=40, deadline=None)
@given(TRICKY | VALUES, st.sampled_from(["bold red", "green", "dim"]))
def test_a_line_prints_its_parts_literally(value: str, style: str) -> None:
    out = io.StringIO()
    render.line(Console(file=out, width=20), ("label", style), " ", value)
    assert out.getvalue() == f"label {value}\n"


def test_the_console_made_here_parses_nothing() -> None:
    console = render.console()
    with console.capture() as captured:
        console.print("fd00:ab:cd::/64 [red]x [/x] :smile:")
    assert captured.get() == "fd00:ab:cd::/64 [red]x [/x] :smile:\n"


@given(st.binary(min_size=1, max_size=20))
def test_plain_shows_undecodable_bytes_as_escapes(raw: bytes) -> None:
    shown = render.plain(raw.decode("utf-8", "surrogateescape"))
    shown.encode("utf-8")  # always printable on a UTF-8 terminal or pipe
    assert shown.replace("\n", "").isprintable()


def test_plain_examples() -> None:
    assert render.plain("eth\udcff0") == "eth\\xff0"
    assert render.plain("a\x1b[31mb") == "a\\x1b[31mb"
    assert render.plain("\ud800") == "\\ud800"  # a lone surrogate from JSON, not a byte
    assert render.plain("fd00:ab:cd::/64 [/x]") == "fd00:ab:cd::/64 [/x]"
    assert render.plain("two\nlines") == "two\nlines"


# -- the commands ------------------------------------------------------------------------


def narrow(*args: str) -> str:
    """Run a command as if on a 30-column pipe; its stdout."""
    done = CliRunner(env={"COLUMNS": "30"}).invoke(cli, list(args))
    assert done.exit_code in (0, 1), done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return done.stdout


def test_cni_ls_prints_markup_like_paths_literally(tmp_path: Path) -> None:
    for odd in ("fd00:ab:cd", "[red]x", "a[/x]b", ":smile:"):
        conf_dir = tmp_path / odd
        conf_dir.mkdir(parents=True)
        net = {"cniVersion": "1.0.0", "name": "fd00.ab.cd", "plugins": [{"type": "loopback"}]}
        (conf_dir / "10-a.conflist").write_text(json.dumps(net))
        out = narrow("cni", "--conf-dir", str(conf_dir), "ls")
        assert str(conf_dir / "10-a.conflist") in out
        assert f"networks in {conf_dir}" in out


def test_cni_ls_names_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    net = {"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "loopback"}]}
    (tmp_path / os.fsdecode(b"10-\xff.conflist")).write_text(json.dumps(net))
    (tmp_path / os.fsdecode(b"20-\xfe.conflist")).write_text("{")
    done = CliRunner().invoke(cli, ["cni", "--conf-dir", str(tmp_path), "ls"])
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit)
    assert "10-\\xff.conflist" in done.stdout  # the file column
    assert "20-\\" in done.stdout  # the problem line


def test_ipam_tables_print_ipv6_pools_whole(tmp_path: Path) -> None:
    config = conf(tmp_path, range="fd00:ab:cd::/64", block_prefix_v6=120)
    for n in range(3):
        assert run("ADD", config, cid=f"container-with-a-long-id-{n}")[0] == 0
    db = str(tmp_path / "ipam.db")
    listing = narrow("ipam", "--db", db, "ls")
    assert "_/fd00:ab:cd::-64" in listing and "fd00:ab:cd::1-" in listing
    assert "🆎" not in listing
    (pool,) = json.loads(narrow("ipam", "--db", db, "ls", "--json"))
    assert pool["pool"] in listing  # copied from the table, it works in `show`
    shown = narrow("ipam", "--db", db, "show", pool["pool"])
    assert "fd00:ab:cd::/120" in shown and "fd00:ab:cd::1" in shown
    assert "container-with-a-long-id-2" in shown
    assert pool["pool"] in narrow("ipam", "--db", db, "usage")


def test_plan_tables_print_ipv6_blocks_whole(tmp_path: Path) -> None:
    doc = dual_stack()
    doc["blocks"]["multus"][1] = "fd00:ab:cd::/64"
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = narrow("plan", str(path))
    assert "fd00:ab:cd::/64" in out and "🆎" not in out
    for prefix in ("10.32.0.0/11", "fd00:32::/48", "100.64.0.0/10"):
        assert prefix in out


@settings(max_examples=30, deadline=None)
@given(TRICKY | VALUES, st.integers(min_value=5, max_value=60))
def test_a_title_is_never_cut(value: str, width: int) -> None:
    out = io.StringIO()
    console = Console(file=out, width=width)
    table = render.table(f"networks in /etc/{value}/net.d", ["name"])
    render.add_row(table, "x")
    render.print_table(console, table)
    assert f"networks in /etc/{value}/net.d" in out.getvalue().splitlines()[0]
