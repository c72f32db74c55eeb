"""`python -m movierec.cli ...`: the same as the `movierec` command."""

import sys

from movierec.cli import main

sys.exit(main())
