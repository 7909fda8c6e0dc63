"""`python -m aexp.cli`: the `aexp` console script without the installed script."""

import sys

from aexp.cli import main

sys.exit(main())
