"""``python -m interp`` (and ``torchrun -m interp``) runs the command line."""

import sys

from interp.cli import main

sys.exit(main())
