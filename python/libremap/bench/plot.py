"""``--plot FILE.png``: the compaction time split per backend (stacked bars,
the wall time as a marker) for each workload at the base point, each sweep
as a line chart of the median compaction wall time per backend, and for the
runtimes (toy VM, and the JVM's collectors with ``--jvm``) the pauses: p50,
p99 and max per column on a log scale.
matplotlib comes with the extras ``plot`` and ``test`` (the quick start's)."""

from __future__ import annotations

from typing import Any

SPLIT = ("produce", "install", "wait", "fault_alloc", "madvise")
COLORS = {
    "produce": "#4c72b0",
    "install": "#55a868",
    "wait": "#c4c4c4",
    "fault_alloc": "#c44e52",
    "madvise": "#dd8452",
}


class PlotUnavailable(RuntimeError):
    pass


def write(result: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed: pip install 'libremap[plot]'"
            " (the quick start's '.[test]' has it too)"
        ) from None

    summary = result["summary"]
    order = result["params"]["backends"]
    order = list(order) + [f"jvm-{c}" for c in result["params"].get("jvm_collectors", [])]
    bars: dict[str, list[dict[str, Any]]] = {}
    sweeps: dict[tuple[str, str], list[dict[str, Any]]] = {}
    pauses: dict[str, list[dict[str, Any]]] = {}
    for e in summary:
        if e["sweep"] is None and "pause_p99_ns" in e["metrics"]:
            pauses.setdefault(e["workload"], []).append(e)
        if e.get("runtime") == "jvm":
            continue  # no compaction split to draw: its pauses are in the pause panel
        if e["sweep"] is None:
            bars.setdefault(e["workload"], []).append(e)
        else:
            key = e["sweep"].split("=")[0]
            sweeps.setdefault((e["workload"], key), []).append(e)
    panels = len(bars) + len(sweeps) + len(pauses)
    if panels == 0:
        raise PlotUnavailable("no verified runs to plot")
    cols = min(3, panels)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    i = 0
    for workload, entries in bars.items():
        ax = flat[i]
        i += 1
        entries.sort(key=lambda e: order.index(e["backend"]) if e["backend"] in order else 99)
        names = [e["backend"] for e in entries]
        bottom = [0.0] * len(entries)
        for part in SPLIT:
            vals = [
                (e["metrics"].get(f"split_ns.{part}") or {}).get("median", 0.0) / 1e6
                for e in entries
            ]
            ax.bar(names, vals, bottom=bottom, label=part, color=COLORS[part])
            bottom = [b + v for b, v in zip(bottom, vals)]
        wall = [(e["metrics"].get("compaction_ns") or {}).get("median", 0.0) / 1e6 for e in entries]
        ax.scatter(names, wall, marker="_", s=900, color="black", zorder=3, label="compaction wall")
        p = entries[0]["point"]
        if workload in ("synthetic", "cold-pages"):
            ax.set_title(f"{workload}: {p.get('heap_mib')} MiB, live {p.get('live')}")
        else:
            ax.set_title(f"{workload}: {p.get('heap_mib')} MiB, {p.get('threads')} mutators")
        ax.set_ylabel("ms (split summed over threads)")
        ax.legend(fontsize=7)
    for (workload, key), entries in sweeps.items():
        ax = flat[i]
        i += 1
        by_backend: dict[str, list[tuple[float, float]]] = {}
        for e in entries:
            m = e["metrics"].get("compaction_ns")
            if m:
                x = float(e["sweep"].split("=", 1)[1])
                by_backend.setdefault(e["backend"], []).append((x, m["median"] / 1e6))
        for b in sorted(by_backend, key=lambda b: order.index(b) if b in order else 99):
            pts = sorted(by_backend[b])
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=b)
        ax.set_title(f"{workload}: sweep {key}")
        ax.set_xlabel(key)
        ax.set_ylabel("compaction wall, ms (median)")
        if key == "heap":
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    for workload, entries in pauses.items():
        ax = flat[i]
        i += 1
        entries.sort(key=lambda e: order.index(e["backend"]) if e["backend"] in order else 99)
        names = [e["backend"] for e in entries]
        width = 0.27
        for j, (k, label) in enumerate(
            (("pause_p50_ns", "p50"), ("pause_p99_ns", "p99"), ("pause_max_ns", "max"))
        ):
            vals = [
                max((e["metrics"].get(k) or {}).get("median", 0.0) / 1e6, 1e-3) for e in entries
            ]
            ax.bar([x + (j - 1) * width for x in range(len(names))], vals, width, label=label)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("stop-the-world pause, ms (median over runs)")
        ax.set_title(f"{workload}: pauses (toy VM pause log, JVM safepoints)")
        ax.legend(fontsize=7)
    for ax in flat[i:]:
        ax.axis("off")
    m = result["machine"]
    fig.suptitle(
        f"libremap bench, Linux {m['kernel']}, {m['cpu']} x{m['cpus']}, {m['date']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
