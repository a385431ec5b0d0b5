"""``python -m npcell ...`` is the ``npcell`` command."""

import sys

from .cli import main

sys.exit(main())
