"""The command line: ``python -m libremap <command> ...``.

Subcommands are the modules of ``libremap.commands`` (see its docstring),
named in ``COMMANDS`` in the order ``--help`` lists them. Each must import and
define ``add_arguments`` and ``run``: a missing or broken command is an error,
never a command that silently disappears.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

COMMANDS = ("probe", "demo", "bench", "soak")


def _command_modules() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for name in COMMANDS:
        mod = importlib.import_module(f"libremap.commands.{name}")
        if not (hasattr(mod, "add_arguments") and hasattr(mod, "run")):
            raise ImportError(f"libremap.commands.{name} lacks add_arguments() or run()")
        found[name] = mod
    return found


def _print_dir(name: str) -> int:
    from ._paths import package_file

    print(package_file(name))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m libremap",
        description="libremap: concurrent, zero-copy heap compaction (userfaultfd UFFDIO_MOVE)",
    )
    parser.add_argument("--version", action="version", version=f"libremap {__version__}")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--cmakedir",
        action="store_true",
        help="print the folder for CMAKE_PREFIX_PATH / libremap_DIR",
    )
    where.add_argument(
        "--pkgconfigdir", action="store_true", help="print the folder for PKG_CONFIG_PATH"
    )
    where.add_argument("--includedir", action="store_true", help="print the folder of libremap.h")
    where.add_argument("--libdir", action="store_true", help="print the folder of libremap.so.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = _command_modules()
    for name, mod in mods.items():
        p = sub.add_parser(
            name, help=getattr(mod, "HELP", None), description=getattr(mod, "HELP", None)
        )
        mod.add_arguments(p)
    return parser, mods


def main(argv: list[str] | None = None) -> int:
    parser, mods = build_parser()
    args = parser.parse_args(argv)
    if args.cmakedir:
        return _print_dir("cmake")
    if args.pkgconfigdir:
        return _print_dir("pkgconfig")
    if args.includedir:
        return _print_dir("include")
    if args.libdir:
        from ._paths import package_file

        print(package_file("libremap.so.0").parent)
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    return int(mods[args.command].run(args) or 0)
