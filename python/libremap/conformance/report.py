"""The conformance report: a table (test x backend/fault mode) for the
terminal, and the same results as JSON with what they were run on."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

from .kit import MATRIX, HeapConfig

CELL = {"passed": "pass", "failed": "FAIL", "skipped": "skip", "xfail": "xfail", "xpass": "XPASS"}


def note_text(reason: str) -> str:
    """A reason with its addresses elided: one note for one mistake, however
    many heaps (at different addresses) it showed up on."""
    return re.sub(r"0x[0-9a-f]{7,}", "0x…", reason)


def row_name(r: dict) -> str:
    return f"{r['test']}[{r['variant']}]" if r["variant"] else r["test"]


def render_table(results: list[dict], description: dict | None, runtime_arg: str | None):
    """Lines of the table; a skip or failure refers to a numbered note."""
    name = description["name"] if description else runtime_arg
    caps = ", ".join(description["capabilities"]) if description else "?"
    yield f"runtime {name} ({runtime_arg}); capabilities: {caps or 'none'}"
    if not results:
        yield "no kit test ran"
        return
    columns = [c.id for c in MATRIX] + ["-"]
    rows: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for r in results:
        col = HeapConfig(r["backend"], r["fault_mode"]).id if r["backend"] else "-"
        cell = CELL.get(r["outcome"], r["outcome"])
        if r["reason"] and r["outcome"] != "passed":
            note = note_text(r["reason"])
            if note not in notes:
                notes.append(note)
            cell += f"({notes.index(note) + 1})"
        rows.setdefault(row_name(r), {})[col] = cell
    used = [c for c in columns if any(c in cells for cells in rows.values())]
    width0 = max(len(n) for n in rows)
    widths = [max(len(c), *(len(cells.get(c, "")) for cells in rows.values())) for c in used]
    yield "  ".join([" " * width0, *(c.ljust(w) for c, w in zip(used, widths))])
    for n, cells in rows.items():
        yield "  ".join(
            [n.ljust(width0), *(cells.get(c, "").ljust(w) for c, w in zip(used, widths))]
        )
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    yield ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    for i, note in enumerate(notes, 1):
        yield f"({i}) {note}"


def write_json(
    path: str,
    results: list[dict],
    description: dict | None,
    runtime_arg: str | None,
    probe: dict | None,
) -> None:
    from ..cabi import ffi, lib

    doc = {
        "libremap": {
            "version": ffi.string(lib.remap_version_string()).decode(),
            "abi_version": int(lib.remap_abi_version()),
        },
        "conformance_abi_version": _conformance_abi(),
        "kernel": probe.get("kernel") if probe else platform.release(),
        "probe": probe,
        "runtime": description or {"argument": runtime_arg, "loaded": False},
        "results": results,
        "summary": {
            o: sum(r["outcome"] == o for r in results)
            for o in sorted({r["outcome"] for r in results})
        },
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def _conformance_abi() -> int:
    from .runtime import lib

    return int(lib.REMAP_CONFORMANCE_ABI_VERSION)
