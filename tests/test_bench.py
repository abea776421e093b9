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

from conftest import run_with_timeout

jsonschema = pytest.importorskip("jsonschema")

from libremap.bench import options, output, summary

CONTRACT_RUN_FIELDS = (
    "workload", "backend", "fault_mode", "run", "warmup", "verified", "compaction_ns",
    "flip_pause_ns", "split_ns", "fault_latency_ns", "pages_installed", "ioctls",
    "bytes_copied", "buffers_recycled", "buffers_new", "minor_faults", "madvise_calls",
    "vmas_before", "vmas_after", "rss_before", "rss_after", "fallbacks", "swap_ins",
)  # fmt: skip


def _bench(tmp_path: Path, *args: str, timeout: int = 240) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out.json"
    env = dict(os.environ)
    env.pop("LIBREMAP_ARENAS", None)
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


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    for args in (["--backends", "nope"], ["--sweep", "size=1,2"], ["--workload", "nope"]):
        p = run_with_timeout(
            [sys.executable, "-m", "libremap", "bench", *args], timeout=60, cwd=tmp_path
        )
        assert p.returncode == 2, (args, p.stdout, p.stderr)
