"""``python -m libremap bench --jvm`` (issue 13.5): the JVM's pause logs are
read right, GCBench.java ships in the package, and the --jvm path either runs
a tiny configuration verified against the toy VM or, without a JDK, says so in
one line and goes on. No timing is asserted here."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from support.bench_docs import bench_doc
from support.image_checks import assert_real_png
from support.processes import run_with_timeout

pytest.importorskip("jsonschema")

from libremap.bench import jvm, output, record

# -Xlog:gc,safepoint:file=...:uptimenanos,level,tags from JDK 17 (trimmed).
JDK17_G1 = """\
[3950521ns][info][gc] Using G1
[62158945ns][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 12M->12M(256M) 17.342ms
[62181522ns][info][safepoint] Safepoint "G1CollectForAllocation", Time since last: 27716482 ns, Reaching safepoint: 92478 ns, Cleanup: 9030 ns, At safepoint: 17397697 ns, Total: 17499205 ns
[75053783ns][info][gc       ] GC(1) Pause Young (Normal) (G1 Evacuation Pause) 22M->22M(256M) 11.847ms
[75073357ns][info][safepoint] Safepoint "G1CollectForAllocation", Time since last: 1006900 ns, Reaching safepoint: 3282 ns, Cleanup: 3760 ns, At safepoint: 11878070 ns, Total: 11885112 ns
[90000000ns][info][safepoint] Safepoint "Cleanup", Time since last: 1913274 ns, Reaching safepoint: 99006 ns, Cleanup: 4293 ns, At safepoint: 1000 ns, Total: 104299 ns
"""  # noqa: E501
JDK17_ZGC = """\
[31431743ns][info][gc] Using The Z Garbage Collector
[155421210ns][info][safepoint] Safepoint "ZMarkStart", Time since last: 107796362 ns, Reaching safepoint: 589217 ns, Cleanup: 30920 ns, At safepoint: 32738 ns, Total: 652875 ns
[200229258ns][info][safepoint] Safepoint "ZMarkEnd", Time since last: 44493390 ns, Reaching safepoint: 261957 ns, Cleanup: 7694 ns, At safepoint: 45645 ns, Total: 315296 ns
[205775823ns][info][safepoint] Safepoint "ZRelocateStart", Time since last: 5431781 ns, Reaching safepoint: 86691 ns, Cleanup: 3137 ns, At safepoint: 26345 ns, Total: 116173 ns
[210709812ns][info][gc       ] GC(0) Garbage Collection (Warmup) 124M(48%)->170M(66%)
"""  # noqa: E501
# JDK 11's -Xlog:safepoint wording.
JDK11 = """\
[0.120s][info][safepoint] Total time for which application threads were stopped: 0.0012345 seconds, Stopping threads took: 0.0000123 seconds
[0.250s][info][safepoint] Total time for which application threads were stopped: 0.0040000 seconds, Stopping threads took: 0.0001000 seconds
"""  # noqa: E501
# Only -Xlog:gc: the collector's own pause lines.
GC_ONLY = """\
[94467019ns][info][gc] GC(0) Pause Init Mark (unload classes) 0.019ms
[118295656ns][info][gc] GC(0) Pause Final Mark (unload classes) 0.055ms
[121721894ns][info][gc] GC(0) Pause Final Roots 0.003ms
[130000000ns][info][gc] GC(1) Pause Full (System.gc()) 10M->1M(256M) 12.500ms
"""


def test_safepoint_lines_are_the_pauses() -> None:
    p = jvm.parse_log(JDK17_G1)
    assert p["source"] == "safepoint" and p["gc_count"] == 2
    assert [x["kind"] for x in p["pauses"]] == ["G1CollectForAllocation"] * 2 + ["Cleanup"]
    assert [x["duration_ns"] for x in p["pauses"]] == [17499205, 11885112, 104299]
    assert p["pauses"][0]["ttsp_ns"] == 92478
    # The decorator is the end of the line's event: the pause started Total before.
    assert p["pauses"][0]["start_ns"] == 62181522 - 17499205
    f = jvm.pause_fields(p["pauses"])
    assert (f["pause_count"], f["pause_p50_ns"], f["pause_max_ns"]) == (3, 11885112, 17499205)
    assert f["pause_p99_ns"] == 17499205  # nearest rank: fewer than 100 pauses
    assert f["pauses_by_kind"]["G1CollectForAllocation"]["count"] == 2
    assert f["ttsp_max_ns"] == 99006

    z = jvm.parse_log(JDK17_ZGC)
    assert [x["kind"] for x in z["pauses"]] == ["ZMarkStart", "ZMarkEnd", "ZRelocateStart"]
    assert z["gc_count"] == 1


def test_older_and_gc_only_logs() -> None:
    old = jvm.parse_log(JDK11)
    assert old["source"].startswith("safepoint (stopped")
    assert [x["duration_ns"] for x in old["pauses"]] == [1234500, 4000000]
    assert old["pauses"][1]["ttsp_ns"] == 100000
    g = jvm.parse_log(GC_ONLY)
    assert g["source"] == "gc pause lines"
    assert [x["kind"] for x in g["pauses"]] == [
        "Pause Init Mark (unload classes)",
        "Pause Final Mark (unload classes)",
        "Pause Final Roots",
        "Pause Full (System.gc())",
    ]
    assert [x["duration_ns"] for x in g["pauses"]] == [19000, 55000, 3000, 12500000]
    assert jvm.parse_log("")["pauses"] == []


def test_gcbench_java_ships_in_the_package() -> None:
    src = jvm.java_source()
    assert src.is_file(), src
    text = src.read_text()
    assert "class GCBench" in text and "GCBENCH nodes=" in text


def test_schema_requires_pauses_of_runtime_records() -> None:
    r = record.empty("gcbench", "jvm-g1", "none")
    r["point"] = {"heap_mib": 1, "live": 0.5, "dense": 0.25, "threads": 2, "seed": 1}
    r["runtime"] = "jvm"
    del r["pause_p99_ns"]
    doc = bench_doc([r])
    with pytest.raises(Exception, match="pause_p99_ns"):
        output.validate(doc)
    r["pause_p99_ns"] = None
    with pytest.raises(Exception, match="collector"):
        output.validate(doc)
    r.update({"collector": "G1", "process_wall_ns": None})
    output.validate(doc)
    r.update({"runtime": "toyvm", "backend": "move"})
    del r["mark_floor_ns_per_object"]
    with pytest.raises(Exception, match="mark_floor_ns_per_object"):
        output.validate(doc)


def _bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Any, Any]:
    out = tmp_path / "out.json"
    e = dict(os.environ if env is None else env)
    e.pop("LIBREMAP_ARENAS", None)
    e["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the compiled GCBench: not in ~/.cache
    p = run_with_timeout(
        [sys.executable, "-m", "libremap", "bench", *args, "--json", str(out)],
        timeout=240,
        env=e,
        cwd=tmp_path,
    )
    doc = json.loads(out.read_text()) if out.exists() else None
    return p, doc


TINY = ("--quick", "--workload", "gcbench", "--backends", "stw", "--runs", "1", "--warmup", "0")


def test_jvm_runs_beside_the_toy_vm_or_skips(tmp_path: Path) -> None:
    p, doc = _bench(tmp_path, *TINY, "--jvm", "--jvm-collectors", "g1")
    assert p.returncode == 0, p.stdout + p.stderr
    output.validate(doc)
    toy = [r for r in doc["runs"] if r.get("runtime") == "toyvm"]
    assert toy and all(r["pause_count"] > 0 for r in toy)
    if not (shutil.which("java") and shutil.which("javac")):
        assert "unavailable: gcbench/jvm: no JDK here" in p.stdout, p.stdout
        return
    runs = [r for r in doc["runs"] if r.get("runtime") == "jvm"]
    assert [r["backend"] for r in runs] == ["jvm-g1"], p.stdout
    r = runs[0]
    assert r["verified"], r["verify_detail"]
    assert r["collector"] == "G1" and r["pause_count"] > 0 and r["mutator_wall_ns"] > 0
    assert 0 < r["pause_p50_ns"] <= r["pause_p99_ns"] <= r["pause_max_ns"]
    assert "toy VM's stw run" in r["verify_detail"]
    assert len(r["pause_log"]) == r["pause_count"]
    assert "jvm-g1" in p.stdout and "pauses by kind" in p.stdout


def test_without_a_jdk_the_jvm_runs_are_skipped_in_one_line(tmp_path: Path) -> None:
    # PATH as it is (an editable install's rebuild needs cmake and the
    # compiler), less java and javac: one folder of links to everything else.
    shadow = tmp_path / "no-jdk"
    shadow.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = shadow / name
            if name in ("java", "javac") or os.path.lexists(link):
                continue
            link.symlink_to(os.path.join(d, name))
    env = dict(os.environ, PATH=str(shadow))
    p, doc = _bench(tmp_path, *TINY, "--jvm", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "no JDK here" in ln]
    assert lines and lines[0].strip().startswith("unavailable: gcbench/jvm:"), p.stdout
    assert not [r for r in doc["runs"] if r.get("runtime") == "jvm"]
    assert any(u["backend"] == "jvm" for u in doc["unavailable"])


def test_jvm_flag_errors(tmp_path: Path) -> None:
    for args in (
        ["--jvm", "--workload", "synthetic"],
        ["--jvm", "--workload", "gcbench", "--jvm-collectors", "cms"],
    ):
        p = run_with_timeout(
            [sys.executable, "-m", "libremap", "bench", *args], timeout=60, cwd=tmp_path
        )
        assert p.returncode == 2, (args, p.stdout, p.stderr)


def test_plot_has_a_pause_panel_for_the_runtimes(tmp_path: Path) -> None:
    # matplotlib comes with the test extra (the quick start's install): no skip.
    from libremap.bench import plot, summary

    def rec(backend: str, runtime: str, p99: int) -> dict[str, Any]:
        r = record.empty("gcbench", backend, "none")
        r.update(runtime=runtime, verified=True, pause_count=3, pause_p50_ns=p99 // 2,
                 pause_p99_ns=p99, pause_max_ns=p99, compaction_ns=10**6)  # fmt: skip
        r["point"] = {"heap_mib": 8, "threads": 2}
        return r

    runs = [rec("move", "toyvm", 2 * 10**6), rec("jvm-g1", "jvm", 10**6)]
    result = {
        "machine": {"kernel": "k", "cpu": "c", "cpus": 2, "date": "d"},
        "params": {"backends": ["move"], "jvm_collectors": ["g1"]},
        "summary": summary.summarize(runs),
    }
    out = tmp_path / "p.png"
    plot.write(result, str(out))
    width, height = assert_real_png(out)
    # Two panels side by side: the toy VM's compaction split and the pauses.
    assert width > height
