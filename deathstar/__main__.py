"""Allow ``python -m deathstar``."""

import sys

from deathstar.cli import main

sys.exit(main())
