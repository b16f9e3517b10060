"""`python -m pipeline.assets`: fetch, index and list assets (see pipeline/assets/sources.py)."""

import sys

from pipeline.assets.sources import main

sys.exit(main())
