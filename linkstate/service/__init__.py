"""The trio shell: transports, connections, one pump task per node that owns its core, logging.

May import: the standard library, trio, structlog, prometheus_client (metrics only), proto and linkstate.core.
"""
