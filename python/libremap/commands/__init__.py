"""Subcommands of ``python -m libremap``.

Each module here is one subcommand named after the module and exposes
``HELP: str`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
``libremap.cli`` finds them by listing this package; nothing else needs
editing to add one.
"""
