"""``libremap.console``, the one formatter of the commands: the same blocks as
plain text for a pipe, as rich on a terminal (a progress bar with the time
left), and as Markdown for ``bench --report``. Presentation only: what a
program reads is the bench's JSON."""

from __future__ import annotations

import io
import re

from libremap import console
from libremap.console import Cell, Heading, Table

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Tty(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def blocks() -> list[console.Block]:
    t = Table(["", "move", "copy"], title="ratio to move")
    t.add("compaction wall", Cell("1.20 ms", "1.10 ms..1.30 ms"), "2.00 ms")
    t.add("  produce (summed)", "[3/10] not markup", "-")
    wide = Table(["", *(f"backend number {i}" for i in range(8))])
    wide.add("a row wider than eighty columns", *(Cell(f"{i}.0 ms", "0..9 ms") for i in range(8)))
    return [Heading("synthetic: heap 16 MiB"), t, "a line, [bold]not markup[/bold]", wide]


def test_units() -> None:
    assert [console.ns(v) for v in (0, 640, 35_000, 1_200_000, 2.5e9)] == [
        "-", "640 ns", "35.0 us", "1.20 ms", "2.50 s",
    ]  # fmt: skip
    assert console.size(3 << 20) == "3.0 MiB" and console.size(12) == "12 B"
    assert console.rate(2_200_000) == "2.20M/s" and console.count(56832) == "56,832"
    assert console.pct(0.16) == "16%" and console.ratio(1.5) == "1.50x"
    assert str(Cell("1 ms", "0..2 ms")) == "1 ms (0..2 ms)" and str(Cell("1 ms")) == "1 ms"


def test_plain_text_is_plain_and_never_wrapped(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()  # not a terminal
    console.Out(out).show(blocks())
    text = out.getvalue()
    assert not ANSI.search(text), text
    lines = text.splitlines()
    assert all(ln == ln.rstrip() for ln in lines), "trailing blanks"
    assert lines[0] == "== synthetic: heap 16 MiB"
    assert "[3/10] not markup" in text and "[bold]not markup[/bold]" in text
    row = next(ln for ln in lines if ln.startswith("a row wider"))
    assert len(row) > 120 and "7.0 ms (0..9 ms)" in row, "a pipe's table must not wrap"
    # Labels left, numbers right-aligned under their header.
    header = next(ln for ln in lines if ln.endswith("copy"))
    first = next(ln for ln in lines if ln.startswith("compaction wall "))
    assert "1.20 ms (1.10 ms..1.30 ms)" in first and len(first) == len(header), (header, first)
    assert first.endswith(" 2.00 ms")


def test_markdown_tables() -> None:
    md = console.markdown(blocks())
    assert "### synthetic: heap 16 MiB" in md and "*ratio to move*" in md
    assert "|  | move | copy |\n|:---|---:|---:|\n" in md
    assert "| compaction wall | 1.20 ms (1.10 ms..1.30 ms) | 2.00 ms |" in md
    # A sub-row keeps its indent (no-break spaces: Markdown collapses spaces).
    assert "| \u00a0\u00a0produce (summed) |" in md
    assert "a line, [bold]not markup[/bold]" in md


def test_progress_off_a_terminal_is_only_the_lines() -> None:
    out = io.StringIO()
    with console.Out(out).progress(3, "bench") as p:
        p.say("  [1/3] move run 1: verified")
        p.advance()
        p.update(total=2, what="copy run 1")
        p.advance()
    assert out.getvalue() == "  [1/3] move run 1: verified\n"


def test_a_terminal_gets_rich_tables_and_a_bar_with_the_time_left() -> None:
    tty = Tty()
    out = console.Out(tty)
    assert out.terminal
    with out.progress(4, "bench") as p:
        p.update(what="gcbench: move run 1")
        p.say("  [1/4] move run 1: verified")
        p.advance(2)
    out.show(blocks())
    raw = tty.getvalue()
    text = ANSI.sub("", raw)
    assert ANSI.search(raw), "no styling on a terminal"
    assert "gcbench: move run 1" in text and "2/4" in text
    assert "elapsed" in text and "left" in text
    assert "  [1/4] move run 1: verified" in text
    assert "synthetic: heap 16 MiB" in text and "compaction wall" in text


def test_the_rss_line_flags_a_rise_over_the_pool_cap():
    from libremap.bench import report

    def entry(backend, rise_mib):
        before = 256 * 2**20
        return {"backend": backend, "metrics": {"rss_before": {"median": before},
                                                 "rss_peak": {"max": before + rise_mib * 2**20}}}

    (line,) = report.rss_line([entry("move", 9.5), entry("copy", report.POOL_CAP_MIB + 1)])
    assert "move +9.5 MiB," in line and "move +9.5 MiB OVER" not in line, line
    assert f"copy +{report.POOL_CAP_MIB + 1}.0 MiB OVER BUDGET" in line, line
