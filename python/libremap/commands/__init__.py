"""Subcommands of ``python -m libremap``.

Each module here is one subcommand named after the module and exposes
``HELP: str`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
``libremap.cli`` lists them in ``COMMANDS``; adding one is a module here and
its name there (a test checks the two agree).
"""
