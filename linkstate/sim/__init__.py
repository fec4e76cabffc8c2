"""Shipped test and benchmark support: the pure simulated network, in-memory transports, the cluster runner.

May import: everything below it (proto, linkstate.core, linkstate.service), trio and structlog.
"""
