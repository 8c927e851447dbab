"""``python -m gnnalloc``: the ``gnnalloc`` command (:func:`gnnalloc.cli.main`)."""

import sys

from gnnalloc.cli import main

if __name__ == "__main__":
    sys.exit(main())
