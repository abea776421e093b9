"""What the commands show a person: the units numbers are written in, tables,
and progress with the time left. One module, so that ``bench``, ``demo``,
``soak`` and the cpython-arenas workload read alike and none of them pads
columns by hand.

A command builds *blocks* (``Heading``, ``Table``, or a plain ``str`` line)
and hands them to ``Out.show``, which draws them with rich on a terminal
(styled tables, a live progress bar) and as plain text otherwise: the same
tables without escape codes, at their natural width (a pipe or a CI log is
never wrapped at 80 columns), and progress as one line per finished step.
``markdown(blocks)`` renders the same blocks for ``bench --report``.

Only presentation lives here: the bench's ``--json`` is the contract, and
nothing a program reads comes from these strings.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table as RichTable
from rich.text import Text

# ---------------------------------------------------------------- units


def ns(v: float) -> str:
    """``1.2 ms``, ``35.0 us``, ``640 ns``; ``-`` for nothing (0, negative, NaN)."""
    if v >= 1e9:
        return f"{v / 1e9:.2f} s"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms" if v < 1e8 else f"{v / 1e6:.0f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.1f} us" if v < 1e5 else f"{v / 1e3:.0f} us"
    if v <= 0 or math.isnan(v):
        return "-"
    return f"{v:.0f} ns"


def ns_fine(v: float) -> str:
    """A per-object time, a few nanoseconds: one decimal."""
    return f"{v:.1f} ns"


def size(v: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1."""
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def rate(v: float) -> str:
    """Per second, with a decimal prefix."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}/s"
    return f"{v:.0f}/s"


def count(v: float) -> str:
    return f"{v:,.0f}"


def pct(v: float) -> str:
    """A fraction (0..1) as a percentage."""
    return f"{100 * v:.0f}%"


def ratio(v: float) -> str:
    return f"{v:.2f}x"


# ---------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Cell:
    """A value and, optionally, its spread (e.g. ``min..max``): written
    ``value (spread)``; on a terminal the spread is dimmed."""

    value: str
    spread: str = ""

    def __str__(self) -> str:
        return f"{self.value} ({self.spread})" if self.spread else self.value


@dataclass(frozen=True)
class Heading:
    """A section's title: ``== text`` in plain text, a heading in Markdown."""

    text: str


@dataclass
class Table:
    """Rows under a header; the first column is the label (left), the others
    are numbers (right)."""

    header: Sequence[str]
    rows: list[Sequence[str | Cell]] = field(default_factory=list)
    title: str = ""

    def add(self, *cells: str | Cell) -> None:
        self.rows.append(cells)


Block = str | Heading | Table


def _compact(spread: str) -> str:
    """``1.1 ms..1.3 ms`` -> ``1.1..1.3 ms``: one unit for both ends."""
    lo, sep, hi = spread.partition("..")
    lo_num, _, lo_unit = lo.partition(" ")
    hi_num, _, hi_unit = hi.partition(" ")
    if sep and lo_unit and lo_unit == hi_unit:
        return f"{lo_num}..{hi_num} {hi_unit}"
    return spread


def _rich_table(t: Table, terminal: bool, stacked: bool = False) -> RichTable:
    # stacked: the spread on a line of its own, for a terminal too narrow
    # for the table (rich would break "1.2 ms (1.1 ms..1.3 ms)" anywhere).
    gap = "\n" if stacked else " "

    rt = RichTable(
        box=box.SIMPLE_HEAD,
        title=t.title or None,
        title_justify="left",
        title_style="italic" if terminal else None,
        header_style="bold" if terminal else "",
        show_edge=False,
        pad_edge=False,
    )
    for i, h in enumerate(t.header):
        rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in t.rows:
        cells = []
        for c in row:
            if isinstance(c, Cell) and c.spread:
                spread = _compact(c.spread) if stacked else c.spread
                cells.append(Text.assemble(c.value, (f"{gap}({spread})", "dim")))
            else:
                cells.append(Text(str(c)))
        rt.add_row(*cells)
    return rt


def _rich_block(b: Block, terminal: bool, width: int = 0) -> RichTable | Text:
    if isinstance(b, Table):
        rt = _rich_table(b, terminal)
        if width and _natural_width(rt) > width:
            rt = _rich_table(b, terminal, stacked=True)
        return rt
    if isinstance(b, Heading):
        return Text(b.text, style="bold") if terminal else Text(f"== {b.text}")
    return Text(b)


def _natural_width(rt: RichTable) -> int:
    con = Console(file=io.StringIO(), width=1000, color_system=None)
    return con.measure(rt).maximum


def render_text(blocks: Iterable[Block]) -> str:
    """Blocks as plain text: no escape codes, tables at their natural width,
    no trailing blanks."""
    buf = io.StringIO()
    # A width no table reaches: rich lays out a table at its natural width
    # and wraps only what passes the console's.
    con = Console(file=buf, width=1000, color_system=None, force_terminal=False,
                  markup=False, highlight=False, emoji=False)  # fmt: skip
    for b in blocks:
        con.print(_rich_block(b, terminal=False))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def _md_cell(s: str) -> str:
    # Markdown collapses the spaces that indent a sub-row's label: keep them
    # as no-break spaces, which it does not.
    stripped = s.lstrip(" ")
    return "\u00a0" * (len(s) - len(stripped)) + stripped.replace("|", "\\|")


def markdown(blocks: Iterable[Block]) -> str:
    """Blocks as GitHub-flavoured Markdown: headings, pipe tables, each line
    a paragraph (an indented line, under the one before it, a list item)."""
    out: list[str] = []
    listing = False
    for b in blocks:
        if isinstance(b, str):
            if not b.strip():
                continue
            item = b[:1].isspace()
            if not (item and listing) and out:
                out.append("")
            out.append(f"- {b.strip()}" if item else b)
            listing = item
            continue
        listing = False
        if out:
            out.append("")
        if isinstance(b, Heading):
            out.append(f"### {b.text}")
            continue
        if b.title:
            out += [f"*{b.title}*", ""]
        out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
        out.append("|" + "|".join([":---", *("---:" for _ in b.header[1:])]) + "|")
        for row in b.rows:
            out.append("| " + " | ".join(_md_cell(str(c)) for c in row) + " |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- output


class Out:
    """Where a command writes: stdout (read when writing, so that a caller
    that swaps sys.stdout is honoured), rich when it is a terminal."""

    def __init__(self, file: TextIO | None = None) -> None:
        self._file = file
        self._console: Console | None = None

    @property
    def file(self) -> TextIO:
        return self._file or sys.stdout

    @property
    def terminal(self) -> bool:
        return self.console.is_terminal

    @property
    def console(self) -> Console:
        if self._console is None:
            # file=None: rich writes to sys.stdout as it is at each print.
            self._console = Console(file=self._file, markup=False, highlight=False, emoji=False)
        return self._console

    def line(self, text: str = "") -> None:
        """One line as it is (no markup: brackets in it stay brackets)."""
        if self.terminal:
            self.console.print(text, soft_wrap=True)
        else:
            self.file.write(text + "\n")
            self.file.flush()

    def show(self, blocks: Iterable[Block]) -> None:
        blocks = list(blocks)
        if not self.terminal:
            text = render_text(blocks)
            self.file.write(text + ("\n" if text else ""))
            self.file.flush()
            return
        for b in blocks:
            self.console.print(_rich_block(b, terminal=True, width=self.console.width))

    @contextmanager
    def progress(self, total: float, what: str) -> Iterator[Progress]:
        """A progress bar with the time left on a terminal; elsewhere only
        the lines said through it."""
        if not self.terminal:
            yield Progress(self, None, None)
            return
        bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("elapsed,"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=self.console,
            transient=True,
        )
        with bar:
            task = bar.add_task(what, total=total)
            yield Progress(self, bar, task)


class Progress:
    """The handle ``Out.progress`` yields: ``say`` a line (above the bar on a
    terminal), ``advance`` by finished steps, ``update`` the total or what
    is running now."""

    def __init__(self, out: Out, bar: RichProgress | None, task: TaskID | None) -> None:
        self._out = out
        self._bar = bar
        self._task = task

    def say(self, text: str) -> None:
        if self._bar is None:
            self._out.line(text)
        else:
            self._bar.console.print(text, soft_wrap=True)

    def advance(self, steps: float = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, steps)

    def update(
        self, *, total: float | None = None, completed: float | None = None, what: str | None = None
    ) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                total=total,
                completed=completed,
                description=what,
            )


__all__ = [
    "Block",
    "Cell",
    "Heading",
    "Out",
    "Progress",
    "Table",
    "count",
    "markdown",
    "ns",
    "ns_fine",
    "pct",
    "rate",
    "ratio",
    "render_text",
    "size",
]
