"""`python -m linkstate`: the same as the `linkstate` console script."""

from linkstate.cli.main import main

main()
