"""`python -m linkstate.bench.convergence ...` (the tcp driver's child processes run `... serve`).

May import: linkstate.bench.convergence.
"""

import sys

from linkstate.bench.convergence.cli import main

sys.exit(main())
