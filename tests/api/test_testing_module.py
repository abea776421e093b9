"""The test fixtures live in libremap._testing (bindings/testing/), apart
from the module users load: ``import libremap``, every module of the
package and every command's module must leave it unloaded, neither
imported (sys.modules) nor mapped (the conformance kit opens it with dlopen
only when a built-in runtime is asked for). Each check runs in a fresh
interpreter: this one has loaded the fixtures already."""

from __future__ import annotations

import json

from support.processes import python_child, run_with_timeout

# Every Python module of the package but __main__ (it runs the CLI) and the
# conformance kit's own test modules (pytest collects them, a user never
# imports them); then what the process holds of the fixtures. (The walk
# also lists the extension modules and, in an editable install, the core's
# libremap.so: neither is a module the package imports by itself.)
IMPORT_ALL = """
import json, pkgutil, importlib, importlib.util, sys
import libremap
names = sorted(
    m.name for m in pkgutil.walk_packages(libremap.__path__, "libremap.")
    if m.name != "libremap.__main__" and ".conformance.test_" not in m.name
    and (importlib.util.find_spec(m.name).origin or "").endswith(".py")
)
for name in names:
    importlib.import_module(name)
maps = open("/proc/self/maps").read()
print(json.dumps({
    "imported": names,
    "loaded": "libremap._testing" in sys.modules,
    "mapped": "/_testing." in maps,
}))
"""


def child(code: str) -> dict:
    r = run_with_timeout(python_child(code), timeout=120, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_libremap_leaves_the_fixtures_out():
    r = child(
        "import json, sys\nimport libremap\n"
        "print(json.dumps({'loaded': 'libremap._testing' in sys.modules,"
        " 'mapped': '/_testing.' in open('/proc/self/maps').read()}))"
    )
    assert r == {"loaded": False, "mapped": False}


def test_no_module_of_the_package_loads_the_fixtures():
    r = child(IMPORT_ALL)
    # The walk found the commands and the kit's driver: the check means something.
    assert "libremap.commands.soak" in r["imported"]
    assert "libremap.conformance.runtime" in r["imported"]
    assert not r["loaded"] and not r["mapped"]


def test_the_fixtures_are_in_testing_and_not_in_core():
    r = child(
        "import json\nfrom libremap import _core, _testing\n"
        "names = ('run_stress', 'set_model_fault', 'MODEL_FAULTS', 'arena_alloc', 'arena_free')\n"
        "print(json.dumps({'testing': [n for n in names if hasattr(_testing, n)],"
        " 'core': [n for n in (*names, 'hook_alloc') if hasattr(_core, n)"
        " or hasattr(_core.cpython_arenas, n)]}))"
    )
    assert r["testing"] == [
        "run_stress",
        "set_model_fault",
        "MODEL_FAULTS",
        "arena_alloc",
        "arena_free",
    ]
    assert r["core"] == []
