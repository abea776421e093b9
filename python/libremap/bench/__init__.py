"""``python -m libremap bench``: every backend on the same heap image, side
by side, with the floor measured in the same run (``/work/shared``'s
BENCHMARKS.md is the method; issue 6 the contract of flags and JSON).

Modules, lowest layer first (each imports only those before it):

- ``unavailable`` (what cannot run here is a result), ``procfs`` (counters
  read around each run, the machine), ``floor`` (raw per-page costs),
  ``pageout`` and ``swapfile`` (making pages cold for cold-pages), ``record``
  (one run's JSON record);
- ``workloads/`` (the adapters: the stw reference and the verification of
  each run), ``jvm`` (GCBench on the JDK, ``--jvm``);
- ``options`` (flags, points), ``runner`` (warm-ups, alternation,
  progress), ``summary`` (medians and ratios to move);
- what is written: ``report`` (the tables, as ``libremap.console`` blocks),
  ``output`` (JSON and ``schema.json``), ``plot`` (PNG), ``page``
  (``--report DIR``: JSON, PNG and a one-page Markdown).
"""

from __future__ import annotations

from .options import Options, UsageError, add_arguments, resolve

__all__ = ["Options", "UsageError", "add_arguments", "main", "resolve"]


def main(opts: Options) -> int:
    """Runs the benchmark; 0 when every counted run was verified, else 1."""
    from .. import console
    from . import output, report, runner

    out = console.Out()
    with out.progress(0, "bench") as progress:
        result = runner.run(opts, progress)
    out.show(report.blocks(result))
    if opts.json_path:
        output.write(result, opts.json_path)
        out.line(f"wrote {opts.json_path}")
    if opts.trace_path:
        from . import trace

        out.line(trace.write(opts, opts.trace_path))
    if opts.plot_path:
        from . import plot

        try:
            plot.write(result, opts.plot_path)
            out.line(f"wrote {opts.plot_path}")
        except plot.PlotUnavailable as e:
            out.line(f"no plot: {e}")
    if opts.report_dir:
        from . import page

        for path in page.write(result, opts.report_dir):
            out.line(f"wrote {path}")
    counted = [r for r in result["runs"] if not r["warmup"]]
    ok = counted and all(r["verified"] for r in counted) and not result["failures"]
    return 0 if ok else 1
