"""The brain, without I/O: directory model, link-state table, route selection, protocol state machines, roles.

May import: the standard library and proto. Never trio, structlog, socket, time or random (time is an argument,
randomness a seeded generator passed in).
"""
