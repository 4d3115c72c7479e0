"""Entry point of `python -m jail`."""

import sys

from .cli import main

sys.exit(main())
