"""Helpers the test suites import (``from support.X import ...``); none of
them is collected as tests.

- ``processes``: child processes with a deadline (``run_with_timeout``,
  ``python_child``);
- ``differential``: synthetic heaps built alike and collected by two
  backends, compared byte for byte against stw; child-process helpers and
  the C test runtime of ``tests/c``;
- ``handbuilt`` and ``cabi_heap``: hand-built heaps through cffi, with the
  object model in Python (functions, with a model that can lie; a ``Heap``
  object);
- ``model_faults``: the synthetic heap's object model made to lie
  (libremap._testing);
- ``stress``: the C++ stress driver (libremap._testing) in a child process;
- ``toyvm``: toy-VM runs in a child process;
- ``embed``: what building against the installed package needs;
- ``bench_docs``, ``image_checks``: bench documents and PNG checks.

The suites are grouped by concern: ``kernel/`` (what the kernel does for
and to a heap: userfaultfd, signals, fork, VMAs, the probe, the native
tests), ``api/`` (the C ABI's contract and the package's own surface),
``backends/`` (every backend against stw), ``stress/`` (mutator threads
racing compaction, the soak command), ``runtimes/`` (the toy VM, the
synthetic heap, CPython's arenas, the conformance kit), ``bench/``.
"""
