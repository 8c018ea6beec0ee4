"""``python -m jobq.cli``: the ``jobq`` command, for a checkout without the console script.

Rule: calls :func:`jobq.cli.main` and nothing else.
"""

import sys

from .entry import main

sys.exit(main())
