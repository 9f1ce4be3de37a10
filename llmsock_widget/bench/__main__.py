"""``python -m llmsock_widget.bench``: see :mod:`llmsock_widget.bench.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
