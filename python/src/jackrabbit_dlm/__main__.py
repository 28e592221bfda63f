"""``python -m jackrabbit_dlm``: the ``dlm`` command line."""

import sys

from .cli import main

sys.exit(main())
