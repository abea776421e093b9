"""``python -m libremap bench``: the harness runs end to end and its JSON keeps
the contract of issue 6 (python/libremap/bench/schema.json). No test here
asserts a timing: timings belong to the benchmark, not to the test suite."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from support.bench_docs import bench_doc
from support.image_checks import assert_real_png
from support.processes import run_with_timeout

jsonschema = pytest.importorskip("jsonschema")

from libremap.bench import options, output, summary

CONTRACT_RUN_FIELDS = (
    "workload", "backend", "fault_mode", "run", "warmup", "verified", "compaction_ns",
    "flip_pause_ns", "split_ns", "fault_latency_ns", "pages_installed", "ioctls",
    "bytes_copied", "buffers_recycled", "buffers_new", "minor_faults", "madvise_calls",
    "vmas_before", "vmas_after", "rss_before", "rss_after", "rss_peak", "fallbacks", "swap_ins",
)  # fmt: skip


def _bench(tmp_path: Path, *args: str, timeout: int = 240) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out.json"
    env = dict(os.environ)
    env.pop("LIBREMAP_ARENAS", None)
    # What a pipe gets: plain text, however wide (not wrapped at 80 columns).
    env["COLUMNS"] = "80"
    p = run_with_timeout(
        [sys.executable, "-m", "libremap", "bench", *args, "--json", str(out)],
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 0, f"bench failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(out.read_text()), p.stdout


def _check_contract(doc: dict[str, Any]) -> None:
    output.validate(doc)
    for k in ("kernel", "cpu", "thp", "probe"):
        assert k in doc["machine"]
    for k in (
        "move_batched_ns_per_page",
        "move_single_ns_per_page",
        "copy_ns_per_page",
        "memcpy_ns_per_page",
    ):
        assert k in doc["floor"]
    assert doc["runs"], "no run recorded"
    for r in doc["runs"]:
        for k in CONTRACT_RUN_FIELDS:
            assert k in r, f"run record lacks {k}"
        for k in ("produce", "install", "wait", "fault_alloc", "madvise"):
            assert k in r["split_ns"]
        for k in ("p50", "p99", "max", "count"):
            assert k in r["fault_latency_ns"]


def test_quick_json_keeps_the_contract_and_every_run_is_verified(tmp_path: Path) -> None:
    doc, stdout = _bench(tmp_path, "--quick")
    _check_contract(doc)
    counted = [r for r in doc["runs"] if not r["warmup"]]
    assert counted
    bad = [(r["workload"], r["backend"], r["run"], r["verify_detail"]) for r in counted]
    bad = [b for b, r in zip(bad, counted) if not r["verified"]]
    assert not bad, f"runs not verified against stw: {bad}"
    # At least the reference backend and one concurrent backend ran.
    backends = {r["backend"] for r in counted}
    assert "stw" in backends
    assert backends & {"move", "copy"}, doc["unavailable"]
    # A backend that did not run is listed with its reason.
    for b in doc["params"]["backends"]:
        if b not in backends:
            assert any(u["backend"] in (b, None) for u in doc["unavailable"]), b
    # Counted runs per backend and workload: --quick's default.
    for w in {r["workload"] for r in counted}:
        for b in {r["backend"] for r in counted if r["workload"] == w}:
            n = sum(1 for r in counted if r["workload"] == w and r["backend"] == b)
            assert n == options.QUICK["runs"]
    assert "counted runs verified" in stdout
    # Toy VM runs: every pause measured (issue 13.4), and marking per object
    # against the plain-bitmap floor.
    toy = [r for r in counted if r["workload"] == "gcbench"]
    assert toy
    for r in toy:
        assert r["runtime"] == "toyvm"
        assert r["pause_count"] >= r["gc_count"] > 0
        assert 0 < r["pause_p50_ns"] <= r["pause_p99_ns"] <= r["pause_max_ns"]
        # The default marking is concurrent: three pause kinds per GC (the
        # minor and sigsegv backends mark stop-the-world and say so).
        assert r["marking_requested"] == "concurrent"
        if r["backend"] in ("minor", "sigsegv"):
            assert r["marking"] == "stw" and r["marking_note"]
            assert r["pauses_by_kind"]["collection"]["count"] == r["gc_count"]
        else:
            assert r["marking"] == "concurrent" and r["marking_note"] is None
            kinds = r["pauses_by_kind"]
            assert kinds["initial_mark"]["count"] == kinds["flip"]["count"] == r["gc_count"]
            assert kinds["remark"]["count"] >= r["gc_count"] and "collection" not in kinds
        assert len(r["pause_log"]) >= r["pause_count"]
        assert r["mutator_wall_ns"] > 0
        assert r["mark_ns_per_object"] > 0 and r["mark_floor_ns_per_object"] > 0
        assert r["mark_phase_ns_per_object"] > 0
    assert "remap_mark per object" in stdout and "pauses by kind" in stdout


def test_readers_during_compaction_are_verified(tmp_path: Path) -> None:
    """Synthetic with reader threads: each traverses the heap while it is
    compacted, and its checksum must equal stw's."""
    doc, _ = _bench(
        tmp_path, "--quick", "--workload", "synthetic", "--threads", "2", "--runs", "2",
        "--backends", "move,copy,stw", "--heap-mib", "16",
    )  # fmt: skip
    _check_contract(doc)
    counted = [r for r in doc["runs"] if not r["warmup"]]
    assert counted and all(r["verified"] for r in counted)
    assert all(r["point"]["threads"] == 2 for r in counted)
    assert all("reader" in r["verify_detail"] for r in counted)


def test_sweep_points_are_recorded(tmp_path: Path) -> None:
    doc, _ = _bench(
        tmp_path, "--quick", "--workload", "synthetic", "--sweep", "live=0.2,0.8",
        "--runs", "1", "--warmup", "0", "--backends", "move,stw", "--heap-mib", "8",
    )  # fmt: skip
    _check_contract(doc)
    values = sorted({r["point"]["sweep"]["value"] for r in doc["runs"]})
    assert values == [0.2, 0.8]
    assert all(r["verified"] for r in doc["runs"])


def test_a_gc_threads_sweep_runs_each_point_with_its_workers(tmp_path: Path) -> None:
    # Issue 14's scaling goal is read from one run: --sweep gc-threads=1,2.
    doc, _ = _bench(
        tmp_path, "--quick", "--workload", "synthetic", "--sweep", "gc-threads=1,2",
        "--runs", "1", "--warmup", "0", "--backends", "move", "--heap-mib", "8",
    )  # fmt: skip
    _check_contract(doc)
    assert sorted({r["point"]["gc_threads"] for r in doc["runs"]}) == [1, 2]
    assert all(r["verified"] for r in doc["runs"])


def test_unverified_runs_get_no_time_and_no_median() -> None:
    from libremap.bench import record

    good = record.empty("synthetic", "move", "sigbus")
    good.update(verified=True, compaction_ns=100, run=0)
    bad = record.empty("synthetic", "move", "sigbus")
    bad.update(verified=False, compaction_ns=1, run=1)
    record.redact(bad)
    assert bad["compaction_ns"] is None and bad["split_ns"]["produce"] is None
    (entry,) = summary.summarize([good, bad])
    assert entry["runs"] == 2 and entry["verified"] == 1
    assert entry["metrics"]["compaction_ns"]["median"] == 100


def test_ratios_are_pair_by_pair() -> None:
    from libremap.bench import record

    recs = []
    for i, (m, c) in enumerate([(10, 30), (20, 20), (40, 20)]):
        for b, v in (("move", m), ("copy", c)):
            r = record.empty("synthetic", b, "sigbus")
            r.update(verified=True, compaction_ns=v, run=i)
            recs.append(r)
    copy = next(e for e in summary.summarize(recs) if e["backend"] == "copy")
    ratio = copy["ratio_to_move"]["compaction_ns"]
    assert (ratio["median"], ratio["min"], ratio["max"]) == (1.0, 0.5, 3.0)


def test_both_markings_alternate_as_columns(tmp_path: Path) -> None:
    doc, stdout = _bench(
        tmp_path,
        "--quick",
        "--workload",
        "gcbench",
        "--backends",
        "move,stw",
        "--marking",
        "concurrent,stw",
        "--runs",
        "1",
        "--warmup",
        "0",
    )
    _check_contract(doc)
    assert doc["params"]["markings"] == ["concurrent", "stw"]
    counted = [r for r in doc["runs"] if not r["warmup"]]
    assert all(r["verified"] for r in counted), [r["verify_detail"] for r in counted]
    # Alternated run by run: backend x marking, in that order.
    seen = [(r["backend"], r["marking_requested"]) for r in counted]
    assert seen[:2] == [(seen[0][0], "concurrent"), (seen[0][0], "stw")], seen
    stw_marked = [r for r in counted if r["marking_requested"] == "stw"]
    assert stw_marked and all(r["marking"] == "stw" for r in stw_marked)
    assert all(set(r["pauses_by_kind"]) == {"collection"} for r in stw_marked)
    cols = {e["backend"]: e for e in doc["summary"]}
    if "move" in cols:
        # The stw-marking column is compared to move (concurrent marking).
        assert "mutator_wall_ns" in cols["move/stw-mark"]["ratio_to_move"]
    assert "stw marking" in stdout and "concurrent marking" in stdout


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    for args in (
        ["--backends", "nope"],
        ["--sweep", "size=1,2"],
        ["--workload", "nope"],
        ["--marking", "incremental"],
    ):
        p = run_with_timeout(
            [sys.executable, "-m", "libremap", "bench", *args], timeout=60, cwd=tmp_path
        )
        assert p.returncode == 2, (args, p.stdout, p.stderr)


# ---------------------------------------------------------------- cold pages

COLD_FIELDS = (
    "large_live_pages", "large_pages_paged_out", "large_pages_swapped_in", "large_objects_moved",
    "large_pages_moved", "large_pages_copied", "large_pages_updated", "large_pages_per_s",
)  # fmt: skip


def _our_swap_files() -> set[str]:
    """libremap-bench swap files on disk or active (other sessions may own some)."""
    import glob

    with open("/proc/swaps") as f:
        active = {ln.split()[0] for ln in f.readlines()[1:] if "libremap-bench-" in ln}
    return set(glob.glob("/var/tmp/libremap-bench-*.swap")) | active


def test_cold_pages_quick_reports_swap_ins_and_large_object_counts(tmp_path: Path) -> None:
    """cold-pages with --quick: the JSON keeps the contract (the cold-pages
    fields are required for its runs), every run is verified, move swaps
    nothing in while copy swaps in every paged-out page, the headline is
    printed, and the swap file is gone afterwards. Not root: the workload is
    listed as unavailable with the reason."""
    files_before = _our_swap_files()
    doc, stdout = _bench(
        tmp_path, "--quick", "--workload", "cold-pages", "--backends", "move,copy,stw",
        "--runs", "1", "--warmup", "0",
    )  # fmt: skip
    output.validate(doc)
    assert _our_swap_files() <= files_before, "the bench left its swap file behind (or on)"
    counted = [r for r in doc["runs"] if not r["warmup"]]
    if not counted:
        (u,) = [u for u in doc["unavailable"] if u["workload"] == "cold-pages"]
        assert u["reason"]
        pytest.skip(f"cold-pages did not run: {u['reason']}")
    _check_contract(doc)
    assert all(r["verified"] for r in counted), [r["verify_detail"] for r in counted]
    by = {r["backend"]: r for r in counted}
    for r in counted:
        for k in COLD_FIELDS:
            assert k in r, f"{r['backend']} run lacks {k}"
        assert r["large_live_pages"] > 0
    move, copy = by["move"], by["copy"]
    for r in (move, copy):
        assert r["large_pages_paged_out"] == r["large_live_pages"], "the page-out was incomplete"
        assert r["large_pages_per_s"] > 0
    assert move["large_pages_swapped_in"] == 0 and move["swap_ins"] == 0, move
    assert copy["large_pages_swapped_in"] == copy["large_pages_paged_out"], copy
    assert copy["swap_ins"] >= copy["large_pages_paged_out"], copy
    assert move["large_objects_moved"] > 0, "no large object moved"
    assert move["large_objects_moved"] == copy["large_objects_moved"]
    assert move["large_pages_copied"] == 0 and copy["large_pages_copied"] > 0
    assert move["large_pages_updated"] == 0, "primitive arrays have no slots to update"
    assert "cold-pages: copy/move compaction" in stdout
    assert "cold-pages: swap-ins move 0" in stdout


def test_cold_pages_headline_judges_the_goals() -> None:
    from libremap.bench import record, report

    def runs(move_ns: int, copy_ns: int, move_swap: int) -> list[dict[str, Any]]:
        recs = []
        for i in range(3):
            for b, ns, sw in (("move", move_ns, move_swap), ("copy", copy_ns, 100)):
                r = record.empty("cold-pages", b, "sigbus")
                r.update(verified=True, compaction_ns=ns, run=i, swap_ins=sw)
                r.update(large_live_pages=100, large_pages_per_s=100 / (ns / 1e9))
                recs.append(r)
        return recs

    good = "\n".join(report.cold_pages_headline(summary.summarize(runs(1000, 20000, 0))))
    assert "copy/move compaction 20.0x" in good and "goal >= 10x: met" in good
    assert "swap-ins move 0 (max 0) vs copy 100" in good and "for move: met" in good
    assert "move 100.00M/s vs copy 5.00M/s" in good
    bad = "\n".join(report.cold_pages_headline(summary.summarize(runs(1000, 5000, 3))))
    assert "5.0x" in bad and "goal >= 10x: NOT met" in bad
    assert "for move: NOT met" in bad


def test_schema_requires_the_cold_pages_fields() -> None:
    from libremap.bench import record

    r = record.empty("cold-pages", "move", "sigbus")
    r["point"] = {"heap_mib": 1, "live": 0.5, "dense": 0.25, "threads": 0, "seed": 1}
    doc = bench_doc([r])
    with pytest.raises(jsonschema.ValidationError, match="large_"):
        output.validate(doc)
    r.update({k: None for k in COLD_FIELDS})
    output.validate(doc)
    r["workload"] = "synthetic"
    del r["large_pages_moved"]
    output.validate(doc)  # other workloads need not carry them


# ---------------------------------------------------------------- --report DIR

TINY = ("--quick", "--workload", "synthetic,gcbench", "--backends", "move,copy,stw",
        "--runs", "2", "--warmup", "0", "--heap-mib", "16", "--floor-reps", "5")  # fmt: skip


def test_report_dir_has_the_json_real_plots_and_a_page(tmp_path: Path) -> None:
    """--report DIR: the contract JSON (the same as --json), the plots as a
    PNG a viewer shows, and report.md: the command, the verdict, the image,
    and the terminal's tables as Markdown tables."""
    folder = tmp_path / "report"  # does not exist yet: the bench makes it
    doc, stdout = _bench(tmp_path, *TINY, "--report", str(folder))
    _check_contract(doc)
    assert json.loads((folder / "bench.json").read_text())["runs"] == doc["runs"]
    width, height = assert_real_png(folder / "bench.png")
    assert width > height  # the panels side by side: two workloads and the pauses
    page = (folder / "report.md").read_text()
    assert page.startswith("# libremap bench\n"), page[:200]
    assert "python -m libremap bench --quick --workload synthetic,gcbench" in page
    assert "![" in page and "(bench.png)" in page and "(bench.json)" in page
    assert "counted runs verified" in page and "No plot" not in page
    for heading in ("### synthetic: heap 16 MiB", "### gcbench: heap 16 MiB"):
        assert heading in page, page
    # Markdown tables: a header, its alignment row, and rows as wide as it.
    header = next(ln for ln in page.splitlines() if ln.startswith("|  | move | copy | stw |"))
    rows = page.split(header + "\n", 1)[1].splitlines()
    assert rows[0] == "|:---|---:|---:|---:|"
    assert rows[1].startswith("| compaction wall | ") and rows[1].count("|") == header.count("|")
    assert "| copy/move | stw/move |" in page  # the ratios
    for f in ("bench.json", "bench.png", "report.md"):
        assert f"wrote {folder / f}" in stdout


def test_report_page_says_why_without_a_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from libremap.bench import page, plot

    def no_plot(result: dict[str, Any], path: str) -> None:
        raise plot.PlotUnavailable("matplotlib is not installed: pip install 'libremap[plot]'")

    result = {
        "machine": {"kernel": "k", "cpu": "c", "cpus": 2, "thp": "madvise", "date": "d",
                    "probe": {"features": {"move": True}}},
        "params": {"backends": ["move"], "jvm_collectors": []},
        "floor": {}, "runs": [], "summary": [], "unavailable": [], "failures": [],
        "elapsed_s": 0.0,
    }  # fmt: skip
    stale = tmp_path / "bench.png"
    stale.write_bytes(b"an older run's plot")
    monkeypatch.setattr(plot, "write", no_plot)
    written = page.write(result, str(tmp_path), command="python -m libremap bench")
    assert [p.name for p in written] == ["bench.json", "report.md"]
    assert not stale.exists(), "a plot of another run was left beside this report"
    text = (tmp_path / "report.md").read_text()
    assert "No plot: matplotlib is not installed: pip install 'libremap[plot]'" in text
    assert "(bench.png)" not in text


# ---------------------------------------------------------------- layering


def test_the_bench_package_imports_form_no_cycle() -> None:
    """Issue 18: coldpages.py and workloads.py imported each other. Every
    import between the bench's modules, top-level or inside a function,
    must go one way."""
    import ast

    from libremap import bench

    root = Path(bench.__file__).parent
    modules = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__") or "": p
        for p in root.rglob("*.py")
    }

    def resolve(mod: str, level: int, name: str | None, is_pkg: bool) -> str | None:
        parts = mod.split(".") if mod else []
        base = parts if is_pkg else parts[:-1]
        if level > len(base) + 1:
            return None  # above the bench package: libremap itself
        base = base[: len(base) - (level - 1)]
        target = ".".join([*base, *(name.split(".") if name else [])])
        return target if target in modules else None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                for a in node.names:
                    # "from . import x": the module x if there is one, else
                    # a name of the package itself.
                    sub = f"{node.module}.{a.name}" if node.module else a.name
                    target = resolve(mod, node.level, sub, is_pkg) or resolve(
                        mod, node.level, node.module, is_pkg
                    )
                    if target is not None and target != mod:
                        edges[mod].add(target)
    seen: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        if seen.get(m) == 2:
            return
        assert seen.get(m) != 1, "import cycle: " + " -> ".join([*stack, m])
        seen[m] = 1
        for t in sorted(edges[m]):
            visit(t, [*stack, m])
        seen[m] = 2

    for m in sorted(modules):
        visit(m, [])
    assert "workloads.coldpages" in modules and "coldpages" not in modules
