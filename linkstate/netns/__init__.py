"""Real network mode: every server of a topology in its own Linux network namespace, joined by real links.

A top layer beside linkstate.cli (which uses it); three modules:
  plan.py    the network as data, computed from a topology without touching the system (pure, no root):
             namespaces, bridges, veth links, addresses, routes, and which links carry which connector.
  fabric.py  builds a plan with pyroute2 (namespaces, veth pairs, bridges, addresses, routes; never `ip`),
             takes links down and up, finds and removes what a run left behind.
  enter.py   enters a namespace: a whole process (`linkstate serve --netns`), one socket (the CLI's DUMP
             queries, through a trio socket factory), or a child process before it runs (the peer benchmark).
Invariants: nothing here touches the initial network namespace: every interface is created inside a namespace
the run created, so traffic never leaves the run's namespaces; every namespace name starts with the run's prefix.
May import: the standard library, trio, pyroute2, proto, linkstate.core (and service/sim, unused so far).
"""
