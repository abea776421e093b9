"""``--report DIR``: one folder a person can open and a tool can read.

- ``bench.json``: the contract (``output.write``, as ``--json`` writes it);
- ``bench.png``: the plots (``plot.write``; needs matplotlib, which the
  quick start's ``.[test]`` and the ``plot`` extra install);
- ``report.md``: one page: the machine, the command that repeats the run,
  the verdict, the plots, and the same tables and headlines the terminal
  shows (``report.blocks``), in Markdown.

A plot that cannot be drawn does not lose the rest: the page says why.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from .. import console
from . import output, report

JSON_NAME = "bench.json"
PLOT_NAME = "bench.png"
PAGE_NAME = "report.md"


def command_line(argv: list[str] | None = None) -> str:
    """The command that repeated this run (``python -m libremap bench ...``)."""
    args = sys.argv[1:] if argv is None else argv
    return "python -m libremap " + shlex.join(args)


def _machine(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    move = "yes" if (m.get("probe") or {}).get("features", {}).get("move") else "no"
    return [
        (
            f"libremap {m.get('libremap')} on Linux {m.get('kernel')}, {m.get('cpu')}"
            f" x{m.get('cpus')}, THP {m.get('thp')}, load {m.get('loadavg')};"
            f" UFFDIO_MOVE {move}; {m.get('date')}"
        ),
    ]


def render(result: dict[str, Any], command: str, plot_note: str | None) -> str:
    """The page's Markdown. ``plot_note`` is None when ``bench.png`` was
    written, else why not."""
    lines = [
        "# libremap bench",
        "",
        *_machine(result),
        "",
        "```sh",
        command,
        "```",
        "",
        f"**{report.verdict_line(result)}**",
        "",
        (
            "Medians over the counted runs that were verified (min..max in brackets);"
            " ratios are taken run by run against `move`. Every run is checked against the"
            " stop-the-world reference; a run that is not gets no time"
            " (`python/libremap/bench/README.md` explains each field)."
        ),
        "",
    ]
    if plot_note is None:
        lines += [f"![compaction time split per backend, sweeps and pauses]({PLOT_NAME})", ""]
    else:
        lines += [f"No plot: {plot_note}", ""]
    lines += [f"Raw records: [`{JSON_NAME}`]({JSON_NAME}).", ""]
    return "\n".join(lines) + "\n" + console.markdown(report.blocks(result))


def write(result: dict[str, Any], folder: str, command: str | None = None) -> list[Path]:
    """Writes the three files into ``folder`` (created if missing); returns
    the paths written."""
    from . import plot

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    output.write(result, str(d / JSON_NAME))
    written.append(d / JSON_NAME)
    note: str | None = None
    try:
        plot.write(result, str(d / PLOT_NAME))
        written.append(d / PLOT_NAME)
    except plot.PlotUnavailable as e:
        note = str(e)
        (d / PLOT_NAME).unlink(missing_ok=True)  # not a stale plot of another run
    page = d / PAGE_NAME
    page.write_text(render(result, command or command_line(), note))
    written.append(page)
    return written
