"""`python -m rotator.cli`: the same as the `rotator` command."""

import sys

from rotator.cli import main

sys.exit(main())
