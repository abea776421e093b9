"""The stress subset .ci/sanitize runs under each sanitizer: the C++ stress
driver (libremap._testing, bindings/testing/stress.h) on every backend and fault mode, each run in its
own process (a sanitizer report ends the process; a wedged fault must not
hang CI), then a few injected kernel failures (os/failure_injection.h) so
that the BROKEN paths run instrumented too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

BACKENDS = ("move", "copy", "minor", "sigsegv", "stw")
MODES = ("sigbus", "thread")
INJECTED = (
    ("move", "sigbus", "uffd_move:40:ENOMEM"),
    ("move", "thread", "uffd_copy:20:EFAULT"),
    ("copy", "sigbus", "uffd_copy:100:EAGAIN:70"),
    ("minor", "thread", "uffd_continue:50:EINVAL"),
    ("sigsegv", "sigbus", "mprotect:30:ENOMEM"),
    ("move", "sigbus", "mremap:2:ENOMEM"),
)
CHILD = """
import json, sys
import libremap._testing as testing
from libremap.synthetic import RemapError
try:
    r = testing.run_stress(sys.argv[1], sys.argv[2], gc_threads=2, mutators=2,
                           cycles=int(sys.argv[3]), heap_mib=4, seed=5, idle_ops=200,
                           timeout_s=120.0)
    r.pop("stats")
except RemapError as e:
    r = dict(verified=False, error=e.message, status=e.status_name, final_phase=-1)
print(json.dumps(r))
"""


def run(backend: str, mode: str, cycles: int, inject: str | None) -> bool:
    # Two GC workers racing each other beside the mutators (a helper would
    # otherwise wait while both CPUs are busy).
    env = dict(os.environ, REMAP_HELPERS_ALWAYS="1")
    if inject:
        env["LIBREMAP_INJECT_FAILURE"] = inject
    t0 = time.monotonic()
    # -S: no site-packages, so an installed (or editable) libremap cannot
    # shadow the sanitized build on PYTHONPATH.
    p = subprocess.run([sys.executable, "-S", "-c", CHILD, backend, mode, str(cycles)], env=env,
                       capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    what = f"{backend}/{mode}" + (f" with {inject}" if inject else "")
    report = [ln for ln in p.stderr.splitlines() if "Sanitizer" in ln or "runtime error" in ln]
    if p.returncode != 0 or report:
        print(f"FAIL {what}: exit {p.returncode} ({took:.1f} s)\n{p.stderr[-8000:]}", flush=True)
        return False
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r.get("status") == "REMAP_EUNSUPPORTED":
        print(f"skip {what}: {r['error']}", flush=True)
        return True
    # Injected: any of the three endings the injection tests accept; plain:
    # every check passed.
    ok = r["verified"] or (inject is not None and r.get("lib_error"))
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {took:.1f} s, cycles {r.get('cycles')}, "
          f"faults {r.get('faults')}, verified {r['verified']} {r.get('error', '')[:200]}",
          flush=True)
    return bool(ok)


def main() -> int:
    ok = True
    for b in BACKENDS:
        for m in MODES:
            ok &= run(b, m, 4, None)
    for b, m, spec in INJECTED:
        ok &= run(b, m, 3, spec)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
