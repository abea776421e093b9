"""``python -m libremap probe [--json]``: what the kernel offers libremap."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..probe import ProbeInfo

HELP = "show what this kernel and process allow, and which backend auto picks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _table(info: ProbeInfo) -> str:
    from ..probe import errno_name

    def errs() -> str:
        parts = [f"{k}={errno_name(v) or 'ok'}" for k, v in info.uffd_errno.items()]
        return ", ".join(parts)

    on = sorted(n for n, v in info.features.items() if v)
    off = sorted(n for n, v in info.features.items() if not v)
    ioctls = sorted(n for n, v in info.ioctls.items() if v)
    rows = [
        ("kernel", info.kernel),
        ("userfaultfd", f"{info.uffd_status} (path: {info.uffd_path})"),
        ("  errno per path", errs()),
        ("  move", "yes" if info.features.get("move") else "no"),
        ("  sigbus", "yes" if info.features.get("sigbus") else "no"),
        ("  features", " ".join(on) or "-"),
        ("  missing features", " ".join(off) or "-"),
        ("  anon MISSING ioctls", " ".join(ioctls) or "-"),
        ("mremap DONTUNMAP", "yes" if info.mremap_dontunmap else "no"),
        ("THP", info.thp_mode),
        ("vm.max_map_count", str(info.max_map_count)),
        ("vm.unprivileged_userfaultfd", str(info.unprivileged_userfaultfd)),
        ("swap", "yes" if info.swap_present else "no"),
        ("page size", str(info.page_size)),
        ("euid", str(info.euid)),
        ("CAP_SYS_PTRACE", "yes" if info.cap_sys_ptrace else "no"),
        ("auto backend", info.auto_backend),
        ("  because", info.auto_reason),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from ..probe import probe

    info = probe()
    if args.json:
        print(json.dumps(info.to_json(), sort_keys=True))
    else:
        print(_table(info))
    return 0
