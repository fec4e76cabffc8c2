"""Convergence benchmark: how long after a change until every server holds the same OrgInfo table, and at what cost.

Owns: generated organizations (line, ring, hub, grid, random: G routing groups x S servers; each group's first
server is its master and the source/remote bridgehead of every connector, connectors both ways between adjacent
groups, costs 1-100 from the seed), the events (major, minor, user, oscillation), three transports (the pure
simulated network `sim`, the real services over in-memory streams under MockClock `memory`, loopback TCP with one
process per server `tcp`), the measurements (per-server arrival of the final digest, messages and bytes on the
wire split 691/SMTP, the floor t_hop x d), and the outputs (tables, JSON, CSV, PNG plots, `compare`).

Usage (see bench/README.md, section "Convergence"):
  linkstate bench convergence run --shape ring --groups 250 --servers 4 --event minor --transport sim --runs 3
  linkstate bench convergence run --shape ring --groups 20 --servers 2 --event minor --transport tcp --runs 5
  linkstate bench convergence run --shape ring --sizes 10x4,50x4,100x4 --event minor --transport sim --plots
  linkstate bench convergence run --event oscillation --transport sim        # and its compat_e2k baseline
  linkstate bench convergence compare before.json after.json
(also `python -m linkstate.bench.convergence ...`, and `python bench/convergence.py ...` from a checkout).

Modules, in the order a run uses them: `organizations` (the generated topologies), `plan` (what every transport
needs to know about one scenario), the drivers `sim`, `memory` and `tcp` (with `counting`, the write counters of
the real services), `results` (runs, scenarios, the convergence definition and arithmetic), `report` (tables,
files, plots, compare, the progress line) and `cli` (arguments, the scenario loop, `main`). The drivers read
nodes only through their public view (`NodeCore.view()`, the table's digest and frame) and act on them only
through inputs (`TableSeeded`, `FaultInjected`, `TopologyChanged`).

Invariants: runs are bounded (a virtual-time budget per run on sim/memory, a wall-clock budget on tcp) and stop by
themselves; tcp binds loopback addresses only (127.x.y.z, checked) and every child process is stopped on success,
failure and Ctrl-C; the convergence definition (DEFINITION) is printed with every result and stored in every file.
May import: anything (a top layer, like linkstate.cli).
"""
