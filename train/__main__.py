"""`python -m train ...`: the trainer's command line (see train/cli.py)."""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
