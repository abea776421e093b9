"""``python -m libremap bench``: every backend on the same heap image, side
by side, with the floor measured in the same run (``/work/shared``'s
BENCHMARKS.md is the method; issue 6 the contract of flags and JSON).

Modules, in the order a run uses them: ``options`` (flags, points),
``workloads`` and ``coldpages`` (adapters; the stw reference and the
verification of each run), ``procfs`` (counters read around each run and the
machine), ``floor`` (raw per-page costs), ``record`` (one run's JSON
record), ``runner`` (warm-ups, alternation, progress), ``summary`` (medians
and ratios to move), ``report`` (the terminal table), ``output`` (JSON and
``schema.json``), ``plot`` (PNG).
"""

from __future__ import annotations

from .options import Options, UsageError, add_arguments, resolve

__all__ = ["Options", "UsageError", "add_arguments", "main", "resolve"]


def main(opts: Options) -> int:
    """Runs the benchmark; 0 when every counted run was verified, else 1."""
    from . import output, report, runner

    result = runner.run(opts)
    print(report.table(result), flush=True)
    if opts.json_path:
        output.write(result, opts.json_path)
        print(f"wrote {opts.json_path}")
    if opts.trace_path:
        from . import trace

        print(trace.write(opts, opts.trace_path), flush=True)
    if opts.plot_path:
        from . import plot

        try:
            plot.write(result, opts.plot_path)
            print(f"wrote {opts.plot_path}")
        except plot.PlotUnavailable as e:
            print(f"no plot: {e}")
    counted = [r for r in result["runs"] if not r["warmup"]]
    ok = counted and all(r["verified"] for r in counted) and not result["failures"]
    return 0 if ok else 1
