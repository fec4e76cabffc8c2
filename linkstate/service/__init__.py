"""The trio shell: transports, connections, one pump task per node that owns its core, logging.

May import: the standard library, trio, structlog, proto and linkstate.core.
"""
