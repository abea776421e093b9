"""Running the toy VM in a child interpreter (tests/runtimes/test_toyvm*.py).

``run_child`` runs one workload under a deadline and caches its dict, so
that tests asking for the same run share it; ``CONFIGS`` are the small
heaps and short runs every toy-VM test starts from.
"""

from __future__ import annotations

import functools
import json

import pytest

from support.processes import python_child, run_with_timeout

# Small heaps and short runs: each is well under a second on a quiet machine
# and still collects many times (a collection every few hundred KiB).
CONFIGS: dict[str, dict] = {
    # The long-lived double[] (20000 doubles, 160 KiB) is a large object.
    "gcbench": {
        "heap_mib": 8,
        "depth": 12,
        "iteration_scale": 0.5,
        "array_size": 20_000,
        "rounds": 2,
    },
    "binary_trees": {"heap_mib": 4, "depth": 12, "rounds": 2},
    # A 12 MiB heap 2/3 free whose survivors are spread over every region:
    # without REMAP_HEAP_EVACUATE (the VM's default) no region is ever free
    # for a 192 KiB value (2 of 40 runs failed so; 0 of 60 with it).
    "lru_cache": {
        "heap_mib": 12,
        "size": 1024,
        "ops": 40_000,
        "max_value_bytes": 4096,
        "large_fraction": 0.004,
        "rounds": 3,
    },
    "random_graph": {"heap_mib": 6, "size": 1024, "ops": 40_000, "rounds": 3},
    # 14 large arrays of 3/4 to 3 regions (about 7 MiB) in 20 MiB: about
    # half of them die between two collections.
    "large_arrays": {"heap_mib": 20, "size": 7, "ops": 400},
}
MIN_GCS = 8

MODES = [
    ("stw", "auto"),
    ("move", "sigbus"),
    ("move", "thread"),
    ("copy", "sigbus"),
    ("copy", "thread"),
    ("minor", "sigbus"),
    ("minor", "thread"),
    ("sigsegv", "sigbus"),
    ("sigsegv", "thread"),
]


@functools.cache
def run_child(
    workload: str, backend: str, fault_mode: str, extra: tuple = (), timeout: float = 45
) -> dict:
    """toyvm.run in a fresh interpreter; the run's dict (check=False)."""
    kw = dict(CONFIGS[workload], **dict(extra))
    code = (
        "import json, sys\n"
        "from libremap import toyvm\n"
        f"r = toyvm.run({workload!r}, backend={backend!r}, fault_mode={fault_mode!r},"
        f" threads=2, check=False, **{kw!r})\n"
        "sys.stdout.write('\\n' + json.dumps(r) + '\\n')\n"
    )
    res = run_with_timeout(python_child(code), timeout=timeout)
    if res.returncode != 0:
        pytest.fail(
            f"toyvm {workload} on {backend}/{fault_mode} died with {res.returncode}\n"
            f"stdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-4000:]}"
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def skip_unsupported(r: dict) -> None:
    err = r["error"]
    if err and err["status_name"] == "REMAP_EUNSUPPORTED":
        pytest.skip(f"{r['params']} {err['message']}")


def describe(r: dict) -> str:
    return f"{r['workload']} {r['backend']}/{r['fault_mode']}: {r['error'] or r['result']}"
