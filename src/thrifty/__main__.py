"""``python -m thrifty ...``: the same as the ``thrifty`` console script."""

import sys

from thrifty.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
