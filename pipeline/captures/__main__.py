"""`python -m pipeline.captures ...`: see pipeline/captures/cli.py."""

import sys

from pipeline.captures.cli import main

sys.exit(main())
