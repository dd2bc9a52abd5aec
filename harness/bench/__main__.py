"""``python -m harness.bench``."""

import sys

from harness.bench.legacy import main

sys.exit(main(sys.argv[1:]))
