"""``python -m rtdet`` (and ``torchrun -m rtdet``) runs the command line."""

import sys

from rtdet.cli import main

sys.exit(main())
