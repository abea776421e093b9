"""The kit's child process: drives libremap's cycle on a runtime.

    python -m libremap.conformance.driver '<scenario JSON>'

prints one JSON line (the outcome) last on stdout. The scenario names the
runtime, the heap (backend, fault mode, GC threads, capacity) and a list of
steps; the driver plays them and stops at the first broken rule, saying
which rule, in which step, and what the runtime or the library reported.

Steps:
  {"do": "cycle"}                       one cycle: mark (runtime), prepare,
                                        flip, forward_roots (runtime),
                                        compact + finish (kit); checks below
  {"do": "cycle", "mutate_seed": s}     the same, with the runtime's mutator
                                        running on a second thread through
                                        remap_compact
  {"do": "cycle", "fork": "prepared"}   fork() after remap_prepare: the child
                                        finishes the cycle (a new engine of its
                                        own) and checks it; then the parent does
  {"do": "cycle", "fork": "compacting"} fork() right after forward_roots: the
                                        child checks the graph it inherited
  {"do": "cycle", "concurrent_mark": "interleaved" | "mutator_first",
   "mutate_seed": s}                    a cycle begun with remap_cycle_begin:
                                        the runtime's concurrent_mark phases,
                                        its mutator on a second thread from
                                        the initial mark to the remark, beside
                                        the trace or (mutator_first) entirely
                                        before it; then prepare, flip, ...
  {"do": "cycle", "syscalls": true}     the runtime's syscalls callback right
                                        after forward_roots, before
                                        remap_compact (pages not produced)
  {"do": "mutate", "seed": s}           the mutator, heap IDLE
  {"do": "inject_fault", "fault": f}    the object model starts lying (0 stops)
  {"do": "clear_marks"}                 remap_clear_marks (after a refused cycle)

A step with "expect_status": "REMAP_..." must fail with that status (a lie
the library has to refuse): it is recorded and the scenario goes on; if it
succeeds or fails otherwise, that is the failure.

After every step the driver records the runtime's checksum. A cycle also
checks, in this order: every root was rewritten as remap_forward_value says;
no live reference slot was left stray (a missed mark); the runtime's verify;
and, without a mutator, that the checksum did not change.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from .runtime import RuntimeLoadError, RuntimeSpec, ffi, has_field, lib, load


class RuleBroken(Exception):
    """A step broke a rule: ``rule`` names it, the message says how."""

    def __init__(self, rule: str, message: str, status: str | None = None):
        super().__init__(message)
        self.rule = rule
        self.status = status


def status_name(s: int) -> str:
    if s == lib.REMAP_CONFORMANCE_EFAILED:
        return "REMAP_CONFORMANCE_EFAILED"
    return ffi.string(lib.remap_status_name(s)).decode()


class Driver:
    def __init__(self, table, scenario: dict):
        self.t = table
        self.sc = scenario
        self.rt = ffi.NULL
        self.heap = ffi.NULL
        self.flags = lib.REMAP_HEAP_VERIFY_REFS if scenario.get("verify_refs", True) else 0
        # Off only for measurements (the pause check): no checksum or verify,
        # whose walks of the graph would dominate a scenario on a big heap.
        self.graph_checks = scenario.get("graph_checks", True)

    # ---- calls, each failure classified once -------------------------------

    def runtime_call(self, rule: str, fn, *args) -> None:
        s = fn(self.rt, *args)
        if s != lib.REMAP_OK:
            msg = ffi.string(self.t.last_error(self.rt)).decode(errors="replace")
            raise RuleBroken(
                rule, f"the runtime's {rule} failed: {status_name(s)}: {msg}", status_name(s)
            )

    def library_call(self, name: str, *args) -> None:
        s = getattr(lib, name)(self.heap, *args)
        if s != lib.REMAP_OK:
            msg = ffi.string(lib.remap_last_error()).decode(errors="replace")
            raise RuleBroken(name, f"{name}: {status_name(s)}: {msg}", status_name(s))

    def checksum(self) -> int:
        if not self.graph_checks:
            return 0
        out = ffi.new("uint64_t*")
        self.runtime_call("checksum", self.t.checksum, out)
        return int(out[0])

    def roots(self) -> list[int]:
        n = self.t.roots(self.rt, ffi.NULL, 0)
        buf = ffi.new("uint64_t[]", max(n, 1))
        self.t.roots(self.rt, buf, n)
        return [int(buf[i]) for i in range(n)]

    def info(self):
        info = ffi.new("remap_heap_info*")
        info.struct_size = ffi.sizeof("remap_heap_info")
        self.library_call("remap_heap_get_info", info)
        return info

    def stats(self):
        st = ffi.new("remap_cycle_stats*")
        st.struct_size = ffi.sizeof("remap_cycle_stats")
        self.library_call("remap_heap_last_stats", st)
        return st

    # ---- the heap ---------------------------------------------------------

    def create(self) -> dict:
        cfg = ffi.new("remap_heap_config*")
        lib.remap_heap_config_init(cfg)
        cfg.capacity = self.sc["capacity"]
        cfg.region_size = self.sc["region_size"]
        cfg.backend = self.sc["backend_id"]
        cfg.fault_mode = self.sc["fault_mode_id"]
        cfg.gc_threads = self.sc["gc_threads"]
        cfg.flags = self.flags
        out = ffi.new("void**")
        s = self.t.create(cfg, self.sc["seed"], out)
        if s != lib.REMAP_OK:
            msg = ffi.string(self.t.last_error(ffi.NULL)).decode(errors="replace")
            raise RuleBroken(
                "create", f"the runtime's create failed: {status_name(s)}: {msg}", status_name(s)
            )
        self.rt = out[0]
        self.heap = self.t.heap(self.rt)
        if self.heap == ffi.NULL:
            raise RuleBroken("create", "the runtime's heap() returned NULL")
        info = self.info()
        # The kit chose these: a runtime that overrides them tests something else.
        if info.capacity != cfg.capacity or (info.flags & self.flags) != self.flags:
            raise RuleBroken(
                "create",
                "the runtime changed the heap config the kit chose "
                f"(capacity {info.capacity}, flags {info.flags:#x})",
            )
        return {
            "backend": ffi.string(lib.remap_backend_name(info.backend)).decode(),
            "fault_mode": ffi.string(lib.remap_fault_mode_name(info.fault_mode)).decode(),
        }

    def destroy(self) -> None:
        if self.rt != ffi.NULL:
            self.t.destroy(self.rt)
            self.rt = ffi.NULL

    # ---- one cycle, driven by the kit --------------------------------------

    def cycle(
        self, mutate_seed: int | None, fork: str | None = None, syscalls: bool = False
    ) -> dict:
        before = self.checksum()
        self.runtime_call("mark", self.t.mark)
        self.library_call("remap_prepare")
        if fork == "prepared":
            self.in_child(lambda: self.finish_cycle(before, None, None))
        return self.finish_cycle(before, mutate_seed, fork, syscalls)

    def concurrent_cycle(self, order: str, mutate_seed: int) -> dict:
        """Marking beside the mutator (remap_cycle_begin), then the rest of
        the cycle; the graph changes (the mutator ran), so no before/after."""
        if not has_field(self.t, "concurrent_mark"):
            raise RuleBroken("concurrent_mark", "the runtime has no concurrent_mark callback")
        mark = self.t.concurrent_mark
        self.runtime_call("concurrent_mark", mark, lib.REMAP_CONFORMANCE_MARK_INITIAL)
        self.library_call("remap_cycle_begin")
        mutator, errors = self.start_mutator(mutate_seed)
        try:
            if order == "mutator_first":
                # Every store lands between the initial mark and the trace:
                # what the tracer must find, it finds only through the log.
                mutator.join()
            self.runtime_call("concurrent_mark", mark, lib.REMAP_CONFORMANCE_MARK_TRACE)
        finally:
            # The remark pause: the mutator stops (and a failed trace must not
            # leave it running into destroy).
            self.join_mutator(mutator, errors)
        self.runtime_call("concurrent_mark", mark, lib.REMAP_CONFORMANCE_MARK_FINAL)
        self.library_call("remap_prepare")
        return self.finish_cycle(None, None, None)

    def start_mutator(self, seed: int):
        errors: list[BaseException] = []

        def run_mutator() -> None:
            try:
                self.runtime_call("mutate", self.t.mutate, seed)
            except BaseException as e:  # noqa: BLE001 - re-raised on the kit's thread
                errors.append(e)

        mutator = threading.Thread(target=run_mutator, name="mutator")
        mutator.start()
        return mutator, errors

    def join_mutator(self, mutator: threading.Thread, errors: list) -> None:
        mutator.join()
        if errors:
            raise errors[0]

    def finish_cycle(
        self, before: int | None, mutate_seed: int | None, fork: str | None, syscalls: bool = False
    ) -> dict:
        """From a prepared heap: flip, roots, compaction, and the checks
        (before: the checksum the cycle must keep; None if the graph changed
        since it was taken)."""
        old_roots = self.roots()
        want = []
        for v in old_roots:
            nv = ffi.new("uint64_t*")
            self.library_call("remap_forward_value", v, nv)
            want.append(int(nv[0]))
        t0 = time.perf_counter_ns()
        self.library_call("remap_flip")
        self.runtime_call("forward_roots", self.t.forward_roots)
        pause_ns = time.perf_counter_ns() - t0
        self.check_roots(old_roots, want, self.roots())
        concurrent = self.info().phase == lib.REMAP_PHASE_COMPACTING
        if syscalls:
            if not has_field(self.t, "syscalls"):
                raise RuleBroken("syscalls", "the runtime has no syscalls callback")
            try:
                self.runtime_call("syscalls", self.t.syscalls)
            except RuleBroken as e:
                raise RuleBroken(
                    e.rule,
                    f"{e} (a system call met a heap page libremap had not produced: call "
                    "remap_touch on the range first; only REMAP_FAULT_THREAD serves the "
                    "kernel's own faults)",
                    e.status,
                ) from None
        if fork == "compacting":
            # The child inherits a heap whose cycle libremap completed at the
            # fork; it must read the same graph, and so must the parent after.
            assert before is not None  # cycle() took it
            self.in_child(
                lambda: self.check_unchanged(before, "in a child forked while compacting")
            )
        if concurrent:
            self.compact_beside_mutator(mutate_seed)
        elif mutate_seed is not None:
            # stw finished the cycle in the flip: the mutator runs after it,
            # which is the reference the concurrent run must match.
            self.runtime_call("mutate", self.t.mutate, mutate_seed)
        st = self.stats()
        if st.slots_stray:
            raise RuleBroken(
                "mark",
                f"{st.slots_stray} reference slots of live objects point into memory "
                "that moved or was freed, at no marked object: a missed mark, an interior "
                "pointer, or slot offsets that do not match the objects",
            )
        if self.graph_checks:
            self.runtime_call("verify", self.t.verify)
        if mutate_seed is None and before is not None:
            after = self.check_unchanged(before, "")
        else:
            after = self.checksum()
        return {
            "checksum": after,
            "concurrent": concurrent,
            "pause_ns": pause_ns,
            "flip_pause_ns": int(st.flip_pause_ns),
            "live_bytes": int(st.live_bytes),
            "pages_by_mutator": int(st.pages_by_mutator),
            "regions_fragmented": int(st.regions_fragmented),
            "regions_large": int(st.regions_large),
            "large_objects_moved": int(st.large_objects_moved),
            "fallback_ebusy": int(st.fallback_ebusy),
        }

    def check_roots(self, old_roots: list[int], want: list[int], got: list[int]) -> None:
        if len(got) != len(want):
            raise RuleBroken(
                "forward_roots",
                f"the runtime had {len(want)} roots before the "
                f"flip and {len(got)} after forward_roots",
            )
        for i, (old, w, g) in enumerate(zip(old_roots, want, got)):
            if w != g:
                raise RuleBroken(
                    "forward_roots",
                    f"root {i} holds {g:#x} after forward_roots, but remap_forward_value "
                    f"gives {w:#x} for its old value {old:#x}: the runtime did not forward "
                    "this root (or forwarded it wrongly)",
                )

    def check_unchanged(self, before: int, where: str) -> int:
        after = self.checksum()
        if after != before:
            raise RuleBroken(
                "checksum",
                f"the cycle changed the reachable graph{' ' + where if where else ''} "
                f"(checksum {before:#x} before, {after:#x} after) although verify passed: "
                "the runtime's roots, marking or object model disagree with what libremap moved",
            )
        return after

    def compact_beside_mutator(self, mutate_seed: int | None) -> None:
        mutator = self.start_mutator(mutate_seed) if mutate_seed is not None else None
        try:
            self.library_call("remap_compact")
        finally:
            if mutator is not None:
                self.join_mutator(*mutator)
        self.library_call("remap_finish")

    def in_child(self, work) -> None:
        """Runs work() in a fork()ed child of this process; its RuleBroken
        becomes the parent's, prefixed with where it happened."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only this thread exists here
            os.close(r)
            code, msg = 0, b""
            try:
                work()
            except RuleBroken as e:
                code, msg = 1, f"{e.rule}\n{e.status or ''}\n{e}".encode()
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                code, msg = 2, f"child\n\n{type(e).__name__}: {e}".encode()
            os.write(w, msg)
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            report = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            raise RuleBroken(
                "fork", f"the forked child was killed by {signal.Signals(os.WTERMSIG(status)).name}"
            )
        if os.WEXITSTATUS(status) != 0:
            rule, status_name_, text = (report.split("\n", 2) + ["", "", ""])[:3]
            raise RuleBroken(
                rule or "fork", f"in the child forked by the kit: {text}", status_name_ or None
            )

    def step(self, step: dict) -> dict:
        do = step["do"]
        if do == "cycle" and step.get("concurrent_mark"):
            return self.concurrent_cycle(step["concurrent_mark"], step["mutate_seed"])
        if do == "cycle":
            return self.cycle(step.get("mutate_seed"), step.get("fork"), bool(step.get("syscalls")))
        if do == "mutate":
            self.runtime_call("mutate", self.t.mutate, step["seed"])
        elif do == "inject_fault":
            if not has_field(self.t, "inject_fault"):
                raise RuleBroken("inject_fault", "the runtime has no inject_fault")
            self.runtime_call("inject_fault", self.t.inject_fault, step["fault"])
        elif do == "clear_marks":
            self.library_call("remap_clear_marks")
        else:
            raise ValueError(f"unknown step {do!r}")
        return {"checksum": self.checksum()}


def run(scenario: dict) -> dict:
    spec = RuntimeSpec(**scenario["runtime"])
    out: dict = {"ok": False, "steps": [], "failure": None}
    try:
        table = load(spec)
    except RuntimeLoadError as e:
        out["failure"] = {
            "step": None,
            "do": "load",
            "rule": "load",
            "status": None,
            "message": str(e),
        }
        return out
    d = Driver(table, scenario)
    try:
        out.update(d.create())
        out["initial_checksum"] = d.checksum()
        for i, step in enumerate(scenario["steps"]):
            expect = step.get("expect_status")
            try:
                result = d.step(step)
                if expect:
                    raise RuleBroken(
                        step["do"], f"{step['do']} succeeded; it had to be refused with {expect}"
                    )
                out["steps"].append(result)
            except RuleBroken as e:
                if expect and e.status == expect:
                    out["steps"].append({"refused": {"rule": e.rule, "message": str(e)}})
                    continue
                out["failure"] = {
                    "step": i,
                    "do": step["do"],
                    "rule": e.rule,
                    "status": e.status,
                    "message": str(e),
                }
                return out
        out["ok"] = True
        return out
    except RuleBroken as e:
        out["failure"] = {
            "step": None,
            "do": "create",
            "rule": e.rule,
            "status": e.status,
            "message": str(e),
        }
        return out
    finally:
        d.destroy()


def describe(spec: dict) -> dict:
    from .runtime import describe as describe_runtime

    try:
        return {"ok": True, **describe_runtime(RuntimeSpec(**spec))}
    except RuntimeLoadError as e:
        return {"ok": False, "error": str(e)}


def main(argv: list[str]) -> int:
    if argv[1] == "--describe":
        result = describe(json.loads(argv[2]))
    else:
        result = run(json.loads(argv[1]))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
