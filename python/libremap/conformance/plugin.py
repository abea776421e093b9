"""The conformance kit's pytest plugin (entry point group ``pytest11``).

Registered for every pytest run in an environment where libremap is
installed, so it stays inert: it adds its options, and does nothing else
unless a runtime is named with ``--libremap-runtime`` or ``LIBREMAP_RUNTIME``.
Then it provides the ``libremap_kit`` fixture the kit's tests use, applies
the known-failures file, and at the end prints the conformance table and
writes the JSON report.

Imports stay light at module level: pytest imports this module in every
project that has libremap installed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

KIT_DIR = Path(__file__).resolve().parent
ENV_RUNTIME = "LIBREMAP_RUNTIME"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("libremap", "libremap conformance kit")
    group.addoption(
        "--libremap-runtime",
        metavar="NAME_OR_PATH",
        default=None,
        help=f"run the conformance kit on this runtime: a built-in name (synthetic) or the "
        f"path of a library exporting remap_conformance_runtime_v1 (also ${ENV_RUNTIME})",
    )
    group.addoption(
        "--libremap-report",
        metavar="FILE",
        default=None,
        help="write the conformance report as JSON to FILE",
    )
    group.addoption(
        "--libremap-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="deadline of each scenario's child process (default 60)",
    )
    group.addoption(
        "--libremap-known-failures",
        metavar="FILE",
        default=None,
        help="lines 'PATTERN [# reason]': kit tests whose id matches PATTERN (* and ? "
        "wildcards, e.g. 'test_differential_vs_stw[minor-*') are marked xfail",
    )


def runtime_option(config: pytest.Config) -> str | None:
    return config.getoption("libremap_runtime", None) or os.environ.get(ENV_RUNTIME) or None


def is_kit_item(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().parent == KIT_DIR


def pytest_configure(config: pytest.Config) -> None:
    if runtime_option(config):
        config.pluginmanager.register(ConformanceRun(config), "libremap-conformance-run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if runtime_option(config):
        return
    skip = pytest.mark.skip(
        reason=f"no runtime named: pass --libremap-runtime=NAME_OR_PATH or set {ENV_RUNTIME}"
    )
    for item in items:
        if is_kit_item(item):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def libremap_kit(pytestconfig: pytest.Config):
    """The runtime under test (kit.Conformance): plays scenarios on it.
    Prefixed: a pytest11 plugin's fixtures are visible to every project."""
    run = pytestconfig.pluginmanager.get_plugin("libremap-conformance-run")
    if run is None:
        pytest.skip(f"no runtime named: pass --libremap-runtime=NAME_OR_PATH or set {ENV_RUNTIME}")
    return run.conformance()


def id_matches(pattern: str, test_id: str) -> bool:
    """Shell-style * and ? only: test ids are full of brackets, which
    fnmatch would read as character classes."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, test_id) is not None


def read_known_failures(path: str) -> list[tuple[str, str]]:
    entries = []
    for line in Path(path).read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        if pattern.strip():
            entries.append((pattern.strip(), reason.strip() or "listed as a known failure"))
    return entries


class ConformanceRun:
    """The plugin's state for one pytest run with a runtime named."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.runtime_arg = runtime_option(config)
        self.results: list[dict] = []
        self.description: dict | None = None
        self.load_error: str | None = None
        self.probe: dict | None = None

    def conformance(self):
        from .kit import Conformance
        from .runtime import RuntimeLoadError, resolve
        from .scenario import ChildFailed, describe

        if self.load_error:
            pytest.fail(self.load_error, pytrace=False)
        try:
            spec = resolve(self.runtime_arg)
            desc = describe(spec, self.config.getoption("libremap_timeout"))
        except (RuntimeLoadError, ChildFailed) as e:
            self.load_error = str(e)
            pytest.fail(self.load_error, pytrace=False)
        if not desc.pop("ok"):
            self.load_error = desc["error"]
            pytest.fail(self.load_error, pytrace=False)
        self.description = desc
        return Conformance(
            spec, desc, self.kernel_probe(), self.config.getoption("libremap_timeout")
        )

    def kernel_probe(self) -> dict:
        if self.probe is None:
            import libremap

            self.probe = libremap.probe().to_json()
        return self.probe

    # ---- known failures --------------------------------------------------------

    def known_failures(self) -> list[tuple[str, str]]:
        """The user's file, and a built-in runtime's own (shipped with the kit)."""
        known = []
        path = self.config.getoption("libremap_known_failures")
        if path:
            known += read_known_failures(path)
        builtin = KIT_DIR / "known_failures" / f"{self.runtime_arg}.txt"
        if self.runtime_arg and os.sep not in self.runtime_arg and builtin.is_file():
            known += read_known_failures(str(builtin))
        return known

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        known = self.known_failures()
        if not known:
            return
        for item in items:
            if not is_kit_item(item):
                continue
            for pattern, reason in known:
                if id_matches(pattern, item.name):
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
                    break

    # ---- results -------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        report = outcome.get_result()
        if not is_kit_item(item):
            return
        # One result per test: the call phase, or the setup phase that
        # skipped or failed it before the call.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.results.append(result_of(item, report))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        from .report import render_table, write_json

        tr = terminalreporter
        tr.section("libremap conformance")
        if self.load_error:
            tr.write_line(f"runtime {self.runtime_arg}: {self.load_error}")
        for line in render_table(self.results, self.description, self.runtime_arg):
            tr.write_line(line)
        path = config.getoption("libremap_report")
        if path:
            write_json(path, self.results, self.description, self.runtime_arg, self.probe_or_none())
            tr.write_line(f"report written to {path}")

    def probe_or_none(self) -> dict | None:
        try:
            return self.kernel_probe()
        except Exception as e:  # noqa: BLE001 - the report must still be written
            return {"error": str(e)}


def result_of(item: pytest.Item, report: pytest.TestReport) -> dict:
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    cfg = params.pop("cfg", None)
    outcome: str = report.outcome
    reason = None
    if hasattr(report, "wasxfail"):
        outcome = "xfail" if report.skipped else "xpass"
        reason = report.wasxfail
    elif report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif report.failed:
        # The assertion's or pytest.fail's message: its first line is the
        # diagnosis (what the runtime did wrong).
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else report.longreprtext
        text = text.strip().removeprefix("AssertionError: ").removeprefix("Failed: ")
        reason = text.splitlines()[0][:400] if text else None
    return {
        "test": getattr(item, "originalname", item.name),
        "variant": ",".join(f"{k}={v}" for k, v in sorted(params.items())),
        "backend": cfg.backend if cfg else None,
        "fault_mode": cfg.fault_mode if cfg else None,
        "outcome": outcome,
        "reason": reason,
        "duration_s": round(report.duration, 3),
    }
