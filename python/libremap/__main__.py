"""``python -m libremap``: see libremap.cli."""

import sys

from .cli import main

sys.exit(main())
