"""libremap.cpython: pymalloc's arenas from libremap's arena pool (issue 8).

Every scenario runs in a fresh interpreter: the arena allocator is
process-wide and an adapter installed here would serve pytest itself.

- the C ABI section (remap_arena_*) through cffi: defaults, misuse, stats;
- install / uninstall / reinstall / context manager, and stats that balance
  against pymalloc's own arena count (sys._debugmallocstats);
- a stress test of interleaved arena and chunk allocations through the very
  hooks pymalloc calls: no block is handed out twice, none is leaked;
- uninstall while libremap arenas are live: the interpreter keeps running
  and frees still reach the pool;
- LIBREMAP_ARENAS=1 through the .pth file, fork, threads;
- CPython's own regression tests (python -m test) with the adapter active
  in every worker (each worker reports its stats at exit).
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from libremap.cabi import ffi, lib

from support.processes import run_with_timeout

MiB = 1 << 20


def child(code: str, env: dict[str, str] | None = None, timeout: float = 120):
    full = dict(os.environ)
    for k in list(full):
        if k.startswith("LIBREMAP_ARENAS"):
            del full[k]
    full.update(env or {})
    return run_with_timeout(
        [sys.executable, "-c", textwrap.dedent(code)], timeout=timeout, env=full, cwd="/"
    )


def child_json(code: str, env: dict[str, str] | None = None, timeout: float = 120):
    r = child(code, env, timeout)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1]), r


# ---- the C ABI ------------------------------------------------------------


def test_cabi_defaults_alloc_free_and_stats():
    cfg = ffi.new("remap_arena_config*")
    lib.remap_arena_config_init(cfg)
    assert cfg.struct_size == ffi.sizeof("remap_arena_config")
    assert cfg.arena_size == MiB and cfg.cap_bytes == 64 * MiB and cfg.max_arenas == 16384
    cfg.max_arenas = 8
    cfg.cap_bytes = 2 * MiB
    out = ffi.new("remap_arena_pool**")
    assert lib.remap_arena_pool_create(cfg, out) == lib.REMAP_OK
    pool = out[0]
    try:
        p = ffi.new("void**")
        assert lib.remap_arena_alloc(pool, MiB, p) == lib.REMAP_OK
        a = p[0]
        assert int(ffi.cast("uintptr_t", a)) % MiB == 0
        ffi.cast("char*", a)[0] = b"x"
        owned = ffi.new("int*")
        assert lib.remap_arena_owns(pool, a, owned) == lib.REMAP_OK and owned[0] == 1
        assert lib.remap_arena_alloc(pool, 20000, p) == lib.REMAP_OK  # a chunk: own mapping
        chunk = p[0]
        st = ffi.new("remap_arena_stats*")
        st.struct_size = ffi.sizeof("remap_arena_stats")
        assert lib.remap_arena_pool_get_stats(pool, st) == lib.REMAP_OK
        assert (st.arenas_live, st.other_live, st.other_bytes_live) == (1, 1, 20480)
        assert st.reserved_bytes == 8 * MiB
        assert lib.remap_arena_free(pool, a, MiB) == lib.REMAP_OK
        assert lib.remap_arena_free(pool, a, MiB) == lib.REMAP_EINVAL  # twice
        assert "second free" in ffi.string(lib.remap_last_error()).decode()
        assert lib.remap_arena_free(pool, chunk, 20000) == lib.REMAP_OK
        x = ffi.new("char[64]")
        assert lib.remap_arena_free(pool, x, 64) == lib.REMAP_ENOENT
        assert "not allocated by this arena pool" in ffi.string(lib.remap_last_error()).decode()
        assert lib.remap_arena_alloc(pool, MiB, p) == lib.REMAP_OK
        assert p[0] == a  # recycled
        assert lib.remap_arena_free(pool, p[0], MiB) == lib.REMAP_OK
        assert lib.remap_arena_pool_trim(pool, 0) == lib.REMAP_OK
        assert lib.remap_arena_pool_get_stats(pool, st) == lib.REMAP_OK
        assert (st.arenas_recycled, st.arenas_cached, st.arenas_returned) == (1, 0, 1)
        assert st.bytes_returned == MiB and st.arenas_live == 0 and st.other_live == 0
    finally:
        lib.remap_arena_pool_destroy(pool)
    lib.remap_arena_pool_destroy(ffi.NULL)


def test_cabi_bad_arguments():
    out = ffi.new("remap_arena_pool**")
    cfg = ffi.new("remap_arena_config*")
    lib.remap_arena_config_init(cfg)
    cfg.arena_size = 1000
    assert lib.remap_arena_pool_create(cfg, out) == lib.REMAP_EINVAL
    assert "arena_size" in ffi.string(lib.remap_last_error()).decode()
    lib.remap_arena_config_init(cfg)
    cfg.struct_size = 8
    assert lib.remap_arena_pool_create(cfg, out) == lib.REMAP_EINVAL
    assert lib.remap_arena_pool_create(ffi.NULL, ffi.NULL) == lib.REMAP_EINVAL
    p = ffi.new("void**")
    assert lib.remap_arena_alloc(ffi.NULL, MiB, p) == lib.REMAP_EINVAL
    assert lib.remap_arena_pool_create(ffi.NULL, out) == lib.REMAP_OK  # NULL config: defaults
    try:
        assert lib.remap_arena_alloc(out[0], 0, p) == lib.REMAP_EINVAL
        assert lib.remap_arena_free(out[0], ffi.NULL, MiB) == lib.REMAP_EINVAL
        st = ffi.new("remap_arena_stats*")
        assert lib.remap_arena_pool_get_stats(out[0], st) == lib.REMAP_EINVAL  # struct_size 0
    finally:
        lib.remap_arena_pool_destroy(out[0])


# ---- the adapter ----------------------------------------------------------

# Reads pymalloc's own count of live arenas from sys._debugmallocstats().
ARENA_COUNT_HELPER = """
import os, sys, tempfile
def pymalloc_arenas():
    fd, path = tempfile.mkstemp()
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    with open(path) as f:
        text = f.read()
    os.close(fd)
    os.unlink(path)
    import re
    return int(re.search(r"# arenas allocated current\\s*=\\s*([\\d,]+)", text).group(1)
               .replace(",", ""))
"""


def test_install_stats_balance_with_pymalloc():
    s, _ = child_json(
        ARENA_COUNT_HELPER
        + textwrap.dedent(
            """
        import gc, json
        from libremap import cpython
        before = pymalloc_arenas()
        assert cpython.install(cap_mib=8)
        assert not cpython.install(cap_mib=8)  # second install: no-op
        for wave in range(5):
            junk = [{"k": i, "v": [i, str(i)]} for i in range(200_000)]
            del junk
            gc.collect()
        st = cpython.stats()
        st["pymalloc_arenas"] = pymalloc_arenas()
        st["pymalloc_before"] = before
        print(json.dumps(st))
        """
        )
    )
    assert s["mode"] == "installed"
    assert s["arenas_allocated"] > 20 and s["arenas_recycled"] > 0 and s["pages_reused"] > 0
    assert s["arenas_live"] == s["arenas_allocated"] - s["arenas_freed"]
    assert s["arenas_peak"] >= s["arenas_live"]
    assert s["arenas_cached"] <= 8
    assert s["bytes_returned"] == s["arenas_returned"] * MiB
    assert s["alloc_failures"] == 0 and s["free_errors"] == 0
    # Every arena pymalloc holds is either one of ours or one from before
    # install that it has not freed yet: nothing leaked, nothing counted twice.
    foreign_live = s["pymalloc_before"] - s["foreign_arena_frees"]
    assert s["pymalloc_arenas"] == s["arenas_live"] + foreign_live, s


def test_stress_hooks_never_hand_out_twice_never_leak():
    s, _ = child_json(
        """
        import ctypes, gc, json, random
        from libremap import cpython
        from libremap import _testing
        from libremap._core import cpython_arenas as native
        cpython.install(cap_mib=4, max_arenas=64)
        A = cpython.ARENA_SIZE
        base = cpython.stats()
        rng = random.Random(8)
        live = {}  # addr -> (size, stamp)
        sizes = [A, A, A, 16384, 32768, 5000, 3 * A]
        overlaps = stamps_bad = 0
        def check_disjoint():
            spans = sorted((a, a + sz) for a, (sz, _) in live.items())
            return sum(1 for x, y in zip(spans, spans[1:]) if y[0] < x[1])
        for step in range(20_000):
            if live and (len(live) > 80 or rng.random() < 0.5):
                addr = rng.choice(list(live))
                size, stamp = live.pop(addr)
                if ctypes.c_uint64.from_address(addr).value != stamp: stamps_bad += 1
                if ctypes.c_uint64.from_address(addr + size - 8).value != stamp: stamps_bad += 1
                _testing.arena_free(addr, size)
                assert not native.owns(addr)
            else:
                size = rng.choice(sizes)
                addr = _testing.arena_alloc(size)
                assert addr and native.owns(addr) and addr not in live
                stamp = rng.getrandbits(64)
                ctypes.c_uint64.from_address(addr).value = stamp
                ctypes.c_uint64.from_address(addr + size - 8).value = stamp
                live[addr] = (size, stamp)
                # pymalloc allocates meanwhile too: keep it busy
                junk = [[i] * 3 for i in range(rng.randrange(0, 20_000))]
                del junk
            if step % 500 == 0: overlaps += check_disjoint()
        overlaps += check_disjoint()
        for addr, (size, stamp) in list(live.items()):
            if ctypes.c_uint64.from_address(addr).value != stamp: stamps_bad += 1
            _testing.arena_free(addr, size)
        gc.collect()
        end = cpython.stats()
        print(json.dumps({"base": base, "end": end, "overlaps": overlaps, "bad": stamps_bad}))
        """,
        timeout=240,
    )
    base, end = s["base"], s["end"]
    assert s["overlaps"] == 0 and s["bad"] == 0
    assert end["free_errors"] == 0 and end["alloc_failures"] == 0
    assert end["arenas_allocated"] - end["arenas_freed"] == end["arenas_live"]
    # Every chunk the test took came back (pymalloc itself holds no chunks
    # of ours unless a thread started: none did).
    assert end["other_live"] == base["other_live"]
    assert end["other_allocated"] - end["other_freed"] == end["other_live"]
    assert end["arenas_recycled"] > 1000
    assert end["arenas_cached"] <= 4
    # Overflow past 64 slots went to mmap and came back too.
    assert end["other_allocated"] > base["other_allocated"]


def test_uninstall_with_live_arenas_keeps_the_interpreter_consistent():
    s, _ = child_json(
        """
        import gc, json
        from libremap import cpython
        with cpython.install(cap_mib=16) as inst:
            assert inst and cpython.installed()
            keep = [{"i": i, "s": str(i) * 3} for i in range(300_000)]
            during = cpython.stats()
        after = cpython.stats()          # uninstalled while `keep` lives
        more = [[i, i] for i in range(300_000)]   # new arenas: previous allocator
        ok = all(d["i"] == i for i, d in enumerate(keep))
        del keep                          # frees of libremap arenas go to the pool
        gc.collect()
        freed = cpython.stats()
        del more
        gc.collect()
        # reinstall with the same settings reuses the pool
        again = bool(cpython.install(cap_mib=16))
        x = [str(i) for i in range(200_000)]
        del x
        final = cpython.stats()
        cpython.uninstall()
        print(json.dumps(dict(during=during, after=after, freed=freed, again=again,
                              final=final, ok=ok)))
        """
    )
    assert s["ok"] and s["again"]
    assert s["during"]["mode"] == "installed" and s["during"]["arenas_live"] > 5
    assert s["after"]["mode"] == "forwarding"
    assert s["freed"]["arenas_live"] < s["after"]["arenas_live"]
    assert s["freed"]["prev_allocs"] > 0  # `more` came from the previous allocator
    assert s["final"]["mode"] == "installed"
    for k in ("during", "after", "freed", "final"):
        assert s[k]["free_errors"] == 0 and s[k]["alloc_failures"] == 0


def test_uninstall_without_live_arenas_restores_the_previous_allocator():
    s, _ = child_json(
        """
        import json
        from libremap import cpython
        from libremap import _testing
        a = _testing.arena_alloc(1 << 20)  # the default allocator's arena
        cpython.install(cap_mib=1)
        _testing.arena_free(a, 1 << 20)    # freed through it: a foreign free
        st = cpython.stats()
        # pymalloc still holds its first arena from the pool: forwarding
        print(json.dumps({"st": st, "un": cpython.uninstall(), "mode": cpython.stats()["mode"],
                          "un2": cpython.uninstall()}))
        """
    )
    assert s["st"]["foreign_frees"] >= 1 and s["st"]["foreign_arena_frees"] >= 1
    assert s["un"] is True and s["un2"] is False
    assert s["mode"] in ("off", "forwarding")


# ---- activation, fork, threads --------------------------------------------


def test_env_var_installs_at_startup_and_stays_quiet_otherwise():
    code = "import sys, json; print(json.dumps('libremap' in sys.modules))"
    r = child(code)
    assert r.returncode == 0 and json.loads(r.stdout) is False, "the .pth imported libremap"
    code = "from libremap import cpython; import json; print(json.dumps(cpython.stats()))"
    s, _ = child_json(code, {"LIBREMAP_ARENAS": "1", "LIBREMAP_ARENAS_CAP_MIB": "3"})
    assert s["mode"] == "installed" and s["cap_bytes"] == 3 * MiB
    s, _ = child_json(code, {"LIBREMAP_ARENAS": "0"})
    assert s["mode"] == "off"
    # Sub-interpreters run site.py too; they must not import _core (pybind11
    # deadlocks there) and share the main interpreter's arena allocator.
    sub = (
        "import _testcapi, json; from libremap import cpython\n"
        "assert _testcapi.run_in_subinterp('x = [str(i) for i in range(100000)]') == 0\n"
        "print(json.dumps(cpython.stats()))"
    )
    s, _ = child_json(sub, {"LIBREMAP_ARENAS": "1"}, timeout=60)
    assert s["mode"] == "installed" and s["free_errors"] == 0
    # A bad setting never stops the interpreter: one line on stderr.
    s, r = child_json(code, {"LIBREMAP_ARENAS": "1", "LIBREMAP_ARENAS_CAP_MIB": "lots"})
    assert s["mode"] == "off" and "was not installed" in r.stderr


def test_fork_child_keeps_its_arenas():
    s, _ = child_json(
        """
        import json, os
        from libremap import cpython
        cpython.install(cap_mib=8)
        data = [str(i) * 4 for i in range(200_000)]
        pid = os.fork()
        if pid == 0:
            ok = all(d == str(i) * 4 for i, d in enumerate(data))
            del data
            more = [[i] for i in range(300_000)]
            del more
            st = cpython.stats()
            os._exit(0 if ok and st["free_errors"] == 0 else 1)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": status, "intact": data[-1] == str(199_999) * 4}))
        """
    )
    assert s["status"] == 0 and s["intact"]


def test_threads_frame_chunks_come_back():
    if sys.version_info < (3, 11):
        pytest.skip("frame-stack chunks go through the arena hook from 3.11")
    s, _ = child_json(
        """
        import json, threading
        from libremap import cpython
        cpython.install(cap_mib=8)
        base = cpython.stats()
        def deep(n):
            return 0 if n == 0 else 1 + deep(n - 1)
        def work():
            deep(600)      # past the first 16 KiB frame-stack chunk
            x = [{i: i} for i in range(50_000)]
        ts = [threading.Thread(target=work) for _ in range(8)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(json.dumps({"base": base, "end": cpython.stats()}))
        """
    )
    base, end = s["base"], s["end"]
    assert end["other_allocated"] > base["other_allocated"]  # chunks of the 8 threads
    assert end["other_live"] == base["other_live"]  # all returned at thread exit
    assert end["free_errors"] == 0


# ---- CPython's own regression tests ---------------------------------------

# Allocator-heavy: containers, gc and weakrefs, (de)serialisation, regexes,
# strings, classes, generators, recursion and threads (frame-stack chunks).
REGRTESTS = [
    "test_dict", "test_list", "test_set", "test_tuple", "test_deque", "test_collections",
    "test_ordered_dict", "test_dictviews", "test_sort", "test_heapq", "test_bisect",
    "test_gc", "test_weakref", "test_weakset", "test_copy", "test_json", "test_pickle",
    "test_marshal", "test_re", "test_unicode", "test_bytes", "test_string", "test_array",
    "test_memoryview", "test_class", "test_descr", "test_generators", "test_itertools",
    "test_functools", "test_exceptions", "test_builtin", "test_long", "test_threading",
    "test_xml_etree",
]  # fmt: skip


def _has_regrtest() -> bool:
    r = run_with_timeout([sys.executable, "-c", "import test.libregrtest"], timeout=60)
    return r.returncode == 0


def test_cpython_regrtest_with_the_adapter(tmp_path: Path):
    if not _has_regrtest():
        pytest.skip(f"{sys.executable} has no stdlib test package (test.libregrtest)")
    stdlib_test = (
        Path(sys.base_prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "test"
    )
    names = [
        n for n in REGRTESTS if (stdlib_test / f"{n}.py").exists() or (stdlib_test / n).is_dir()
    ]
    assert len(names) >= 25, names
    env = dict(os.environ)
    env.update(
        LIBREMAP_ARENAS="1", LIBREMAP_ARENAS_CAP_MIB="16", LIBREMAP_ARENAS_REPORT=str(tmp_path)
    )
    r = run_with_timeout(
        # test_import_from_another_thread fails here without the adapter too:
        # a .pth of the machine's site-packages imports threading at start.
        [
            sys.executable,
            "-m",
            "test",
            "-j0",
            "--timeout=250",
            "-i",
            "test_import_from_another_thread",
            *names,
        ],
        timeout=280,  # pytest-timeout allows 300 s per test (pyproject)
        env=env,
        cwd=str(tmp_path),
    )
    tail = r.stdout[-4000:] + r.stderr[-2000:]
    assert r.returncode == 0 and "Tests result: SUCCESS" in r.stdout, tail
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("arenas-*.json")]
    workers = [s for s in reports if "--worker-args" in " ".join(s["argv"]) or "-c" in s["argv"]]
    assert reports, "no process reported: the adapter was not active\n" + tail
    assert all(s["mode"] == "installed" for s in reports), reports
    assert sum(s["arenas_allocated"] for s in reports) > 100
    assert sum(s["arenas_recycled"] for s in reports) > 0
    assert all(s["free_errors"] == 0 and s["alloc_failures"] == 0 for s in reports), reports
    assert len(reports) >= 2, f"only {len(reports)} reports ({len(workers)} workers)"
    m = re.search(r"Total tests: run=([\d,]+)", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 3000, tail


# ---- the benchmark workload -----------------------------------------------


def test_cpython_arenas_workload_records():
    from libremap.bench.workloads import cpython_arenas as w

    params = {"runs": 1, "warmup": 0, "cap_mib": 8, "churn_waves": 2, "churn_objects": 50_000,
              "mixed_records": 2_000, "mixed_repeats": 2}  # fmt: skip
    recs = w.run(params)
    assert [(r["case"], r["backend"]) for r in recs] == [
        ("churn", "default"), ("churn", "libremap"), ("mixed", "default"), ("mixed", "libremap")
    ]  # fmt: skip
    for r in recs:
        assert r["verified"], r["verify_detail"]
        assert r["mutator_wall_ns"] > 0 and r["cpu_ns"] > 0 and r["peak_rss"] > 0
        assert r["minor_faults"] >= 0
    lib_churn = recs[1]["arenas"]
    assert lib_churn["mode"] == "installed" and lib_churn["arenas_recycled"] > 0
    rows = w.summarize(recs)
    assert {r["workload"] for r in rows} == {"churn", "mixed"}
    assert "speedup" in w.table(rows, 8)
