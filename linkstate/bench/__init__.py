"""Benchmarks that ship with the package (run from the command line: `linkstate bench ...`).

May import: anything (a top layer, like linkstate.cli).
"""
