"""The `linkstate` command line: one module per command group, registered in `main`.

May import: anything in the project.
"""
