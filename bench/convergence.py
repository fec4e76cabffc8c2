"""The convergence benchmark from a source checkout: `python bench/convergence.py run ...`.

The benchmark is the package linkstate.bench.convergence (also `linkstate bench convergence ...` and
`python -m linkstate.bench.convergence ...`); this file only runs its command line, with the installed package
(`make` installs it into .venv).
May import: linkstate.bench.convergence.
"""

import sys

from linkstate.bench.convergence.cli import main

if __name__ == "__main__":
    sys.exit(main())
