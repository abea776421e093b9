"""libremap's conformance kit: tests that a runtime's own integration with
libremap is correct, on this kernel, with every backend.

    python -m pytest --pyargs libremap.conformance --libremap-runtime=NAME_OR_PATH

``NAME`` is a runtime built into the package (``synthetic``); ``PATH`` is a
shared library exporting ``remap_conformance_runtime_v1`` (see the installed
header ``include/libremap_conformance.h``). The pytest plugin (``plugin.py``,
entry point ``pytest11``) stays inert unless a runtime is named.

Layout: ``runtime.py`` loads a runtime's table with cffi; ``driver.py`` is
the child process that drives libremap's cycle on it (one process per test,
so a runtime that hangs in a fault fails its test instead of the run);
``scenario.py`` runs the driver with a deadline; ``report.py`` builds the
conformance table; ``test_*.py`` are the kit's tests.
"""
