"""Everything the CLI prints for people goes through here: values are data, never markup.

rich reads ``fd00:ab:cd::/64`` as the emoji code ``:ab:``, ``[red]x`` as a style
and ``[/x]`` as a broken closing tag. The console made here parses none of
that, and every value becomes a :class:`~rich.text.Text` before rich sees it,
so styles come only from this module's callers, never from the data.

Tables never wrap or cut a value: a prefix broken over two lines, or ending in
an ellipsis, is a wrong prefix once copied. A table wider than the terminal
(or than rich's 80 columns on a pipe) is printed at its natural width instead;
the terminal wraps whole lines, a pipe gets them intact.

rich is imported by the commands that print tables only; ``multinic cni add``
and the plugins never load this module.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleRenderable, RichCast
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import RenderableType

#: Widest table we lay out; beyond this nobody reads it as a table anyway.
MAX_TABLE_WIDTH = 100_000

Part = str | tuple[str, str]


def plain(value: object) -> str:
    """``value`` as printable text: undecodable bytes and control characters as ``\\xNN``.

    File names and environment variables may hold bytes that are not UTF-8
    (Python keeps them as surrogates, which a UTF-8 stdout refuses), and a
    control character in a name must not drive the terminal.
    """
    text = str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that was never a byte (JSON "\ud800")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(_visible(char) for char in text)


def _visible(char: str) -> str:
    if char == "\n" or char.isprintable():
        return char
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def text(*parts: Part) -> Text:
    """One line from plain strings and ``(string, style)`` pairs; nothing in them is parsed."""
    return Text.assemble(
        *((plain(p[0]), p[1]) if isinstance(p, tuple) else plain(p) for p in parts)
    )


def console(*, stderr: bool = False) -> Console:
    """A console that prints data as it is: no markup, no emoji codes, no guessed highlights."""
    return Console(markup=False, emoji=False, highlight=False, stderr=stderr)


def table(title: str, columns: Iterable[str], *, right: Collection[str] = ()) -> Table:
    """A table whose cells never wrap; columns named in ``right`` are right-aligned (numbers)."""
    heading = text(title)
    heading.no_wrap, heading.overflow = True, "ignore"  # a path in a title is data too
    made = Table(title=heading, title_justify="left")
    for column in columns:
        made.add_column(
            text(column),
            justify="right" if column in right else "left",
            no_wrap=True,
            overflow="ignore",  # never an ellipsis; print_table makes room instead
        )
    return made


def add_row(table: Table, *cells: object) -> None:
    """Add a row; strings (and anything else that is not already rich) become plain text."""
    table.add_row(*(_cell(cell) for cell in cells))


def _cell(cell: object) -> RenderableType:
    if isinstance(cell, ConsoleRenderable | RichCast):  # a bar, a styled Text: ours
        return cell
    return text(str(cell))


def print_table(out: Console, table: Table) -> None:
    """Print ``table`` at least as wide as its widest row needs, whatever the terminal's width."""
    needed = natural_width(out, table)
    if isinstance(table.title, Text):  # rich lays the title out within the table's width
        needed = max(needed, table.title.cell_len)
    if needed <= out.width:
        out.print(table)
        return
    saved = out.width
    out.width = needed
    try:
        out.print(table)
    finally:
        out.width = saved


def natural_width(out: Console, renderable: RenderableType) -> int:
    """The width ``renderable`` takes when nothing has to be squeezed."""
    options = out.options.update_width(MAX_TABLE_WIDTH)
    return Measurement.get(out, options, renderable).maximum


def line(out: Console, *parts: Part) -> None:
    """Print one line of text; long lines are not wrapped, so grep and copy work."""
    out.print(text(*parts), soft_wrap=True)
