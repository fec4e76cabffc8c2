"""linkstate: an open re-implementation of the Exchange 2000/2003 link-state routing engine.

Layers (imports run one way): proto <- linkstate.core <- linkstate.service <- linkstate.sim <- linkstate.cli.
"""

__version__ = "0.1.0"
