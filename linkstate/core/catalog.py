"""The event catalog: every event a node logs, with its Exchange-style event ID, its level and its fields.

Owns: `Ev`, the closed vocabulary of event names (a `Diagnostic` of the core and every line the service logs
carries one: a name that is not here cannot be emitted), `CATALOG` (each event's `EventSpec`: ID, level, the
fields it may carry, one line of meaning, and for a few events a quieter level with the rule that selects it),
`FIELDS` (what each field means) and `markdown()`, the text of docs/EVENTS.md (a test keeps the two equal;
`linkstate events --markdown` prints it).
Event IDs: the Exchange 2000/2003 IDs keep their meaning (929, 958, 961, 962, 995, 996, 4005, each on exactly
one event); every other event has an ID in linkstate's private range 30000-30999, by area: 300xx the node and
its directory, 301xx a group's master, 302xx a member, 303xx connections and TCP 691 sessions, 304xx the
bridgehead (SMTP), 305xx the table and connector states, 306xx operator commands, 307xx metrics. No two events
share an ID.
Invariants: pure data; an event's fields are exactly the keywords its call sites may pass (checked by
tests/test_events.py, which reads every call site); times in fields are `Instant`s (linkstate.core.events),
which the service writes as wall-clock ISO-8601, never as a raw monotonic value.
May import: the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Level = Literal["debug", "info", "warning", "error"]

EXCHANGE_IDS = (929, 958, 961, 962, 995, 996, 4005)
PRIVATE_RANGE = range(30000, 31000)


class Ev(enum.StrEnum):
    """Every event name (see CATALOG for what each means)."""

    # Exchange's own IDs
    TOPOLOGY_REJECTED = "topology_rejected"
    MASTER_RELINQUISHED = "master_relinquished"
    AUTH_FAILED = "auth_failed"
    CLIENT_AUTH_FAILED = "client_auth_failed"
    AUTHENTICATED = "authenticated"
    CLIENT_AUTHENTICATED = "client_authenticated"
    RESET_ROUTES = "reset_routes"
    # 300xx the node and its directory
    NODE_STARTED = "node_started"
    LISTENING = "listening"
    STOPPED = "stopped"
    SIGNAL = "signal"
    SIGHUP = "sighup"
    TOPOLOGY_LOADED = "topology_loaded"
    MASTER_UNKNOWN = "master_unknown"
    SMTP_LISTENER_FAILED = "smtp_listener_failed"
    SMTP_LISTENING = "smtp_listening"
    LISTENER_CHANGED = "listener_changed"
    # 301xx a group's master
    MASTER_STARTED = "master_started"
    MASTER_PUBLISHED = "master_published"
    MEMBER_ATTACHED = "member_attached"
    MEMBER_DETACHED = "member_detached"
    ATTACH_REFUSED = "attach_refused"
    STATE_IGNORED = "state_ignored"
    STATE_CHANGE_PINNED = "state_change_pinned"
    QUORUM_PROBE_ANSWERED = "quorum_probe_answered"
    MASTER_CONFLICT = "master_conflict"
    VERSION_REFUSED = "version_refused"
    VERSION_SATURATED = "version_saturated"
    # 302xx a member
    ATTACHED = "attached"
    MASTER_UNREACHABLE = "master_unreachable"
    MASTER_DETACHED = "master_detached"
    ATTACH_REFUSED_BY_MASTER = "attach_refused_by_master"
    POLL_DIFFERENT = "poll_different"
    # 303xx connections and TCP 691 sessions
    SESSION_FAILED = "session_failed"
    UNEXPECTED_MESSAGE = "unexpected_message"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_ERROR = "connection_error"
    CONNECTION_TIMEOUT = "connection_timeout"
    PEER_TOO_SLOW = "peer_too_slow"
    ENCODE_FAILED = "encode_failed"
    CONNECTION_EVICTED = "connection_evicted"
    CONNECTION_DROPPED = "connection_dropped"
    # 304xx the bridgehead (SMTP, X-LINK2STATE)
    BRIDGEHEAD_SESSION_FAILED = "bridgehead_session_failed"
    BRIDGEHEAD_SESSION_DONE = "bridgehead_session_done"
    LINK2STATE_REJECTED = "link2state_rejected"
    ORGINFO_REJECTED = "orginfo_rejected"
    MAIL_QUEUED = "mail_queued"
    STATE_CHANGE_SUPPRESSED = "state_change_suppressed"
    # 305xx the table and connector states
    ORGINFO_APPLIED = "orginfo_applied"
    ORGINFO_LEARNED = "orginfo_learned"
    CONNECTOR_STATE_COMMITTED = "connector_state_committed"
    BRIDGEHEAD_STATE_COMMITTED = "bridgehead_state_committed"
    OSCILLATION_WINDOW_OPENED = "oscillation_window_opened"
    OSCILLATION_SUPPRESSED = "oscillation_suppressed"
    SECTIONS_REFUSED = "sections_refused"
    # 306xx operator commands
    CLIENT_COMMAND_REFUSED = "client_command_refused"
    TOMBSTONE_INJECTED = "tombstone_injected"
    INJECT_REFUSED = "inject_refused"
    FAULT_INJECTED = "fault_injected"
    FAULT_REFUSED = "fault_refused"
    DUMP_RATE_EXCEEDED = "dump_rate_exceeded"
    # 307xx metrics
    METRICS_UNAVAILABLE = "metrics_unavailable"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event: `event_id`, `level`, the `fields` it may carry, what it means; `quiet`: the level it takes
    instead when its call site says so, under the rule `quiet_when` states."""

    event_id: int
    level: Level
    fields: tuple[str, ...]
    meaning: str
    quiet: Level | None = None
    quiet_when: str = ""

    def level_for(self, quiet: bool) -> Level:
        return self.quiet if quiet and self.quiet is not None else self.level


_STARTUP = (
    "while the node is starting: within `master_settle` of its start (or of a role change), before the first "
    "success with that peer (the servers of an organization start in any order)"
)
_AUTH = ("protocol", "conn", "peer", "reason", "cause")

CATALOG: Mapping[Ev, EventSpec] = {
    Ev.TOPOLOGY_REJECTED: EventSpec(
        929, "error", ("problems", "first", "reason"),
        "An invalid directory (topology file) was not read; the node keeps the one it had.",
    ),
    Ev.MASTER_RELINQUISHED: EventSpec(
        958, "warning", ("new_master", "reason"),
        "This server is no longer its group's master (the directory names another, or a server that does not "
        "exist, or it lacked quorum and another master of its group has it: it follows that one); it stops acting "
        "as master.",
    ),
    Ev.AUTH_FAILED: EventSpec(
        961, "warning", _AUTH,
        "A member, master or bridgehead failed mutual authentication (wrong secret, a bad or out-of-order frame, "
        "or the connection closed first); the connection is closed.",
    ),
    Ev.CLIENT_AUTH_FAILED: EventSpec(
        962, "warning", _AUTH,
        "A client node (an operator tool; on SMTP, this bridgehead as the initiator) failed mutual "
        "authentication; the connection is closed.",
    ),
    Ev.AUTHENTICATED: EventSpec(
        995, "debug", ("protocol", "peer", "peer_kind"),
        "A member, master or bridgehead passed mutual authentication (one per session: debug).",
    ),
    Ev.CLIENT_AUTHENTICATED: EventSpec(
        996, "debug", ("protocol", "peer", "peer_kind"),
        "A client node passed mutual authentication (on SMTP: the remote bridgehead, seen from the initiator).",
    ),
    Ev.RESET_ROUTES: EventSpec(
        4005, "info", ("digest", "kind"),
        "Routes are recomputed: the table took a change that can move them (a major or minor version moved: the "
        "master's own update, or one carried by a push or a merge; never a user update).",
    ),
    Ev.NODE_STARTED: EventSpec(
        30001, "info", ("server", "rg", "role", "digest"), "The routing engine of this server started."
    ),
    Ev.LISTENING: EventSpec(
        30002, "info", ("host", "port", "smtp_port", "metrics", "role"),
        "The node listens on TCP 691, on SMTP and (when `metrics` is not empty) on its metrics URL.",
    ),
    Ev.STOPPED: EventSpec(30003, "info", (), "The node stopped: every connection closed, members detached."),
    Ev.SIGNAL: EventSpec(30004, "info", ("signal", "action"), "SIGINT or SIGTERM: the node shuts down."),
    Ev.SIGHUP: EventSpec(30005, "info", ("action",), "SIGHUP: the node re-reads its topology file."),
    Ev.TOPOLOGY_LOADED: EventSpec(
        30006, "info", ("master",), "A changed directory was applied (`master`: its group's master now)."
    ),
    Ev.MASTER_UNKNOWN: EventSpec(
        30008, "warning", ("master",),
        "The directory names as this group's master a server it does not hold: the member keeps its table and "
        "attaches to no one until the directory is fixed (R81).",
    ),
    Ev.SMTP_LISTENER_FAILED: EventSpec(
        30009, "error", ("host", "port", "reason", "retry_every_s"),
        "The SMTP port could not be bound: the node runs without its virtual server (its connectors report "
        "CONN_NOT_STARTED, G40) and tries again every `bh_probe_interval`.",
    ),
    Ev.SMTP_LISTENING: EventSpec(
        30010, "info", ("host", "port"), "The SMTP port that could not be bound at the start is bound now."
    ),
    Ev.LISTENER_CHANGED: EventSpec(
        30011, "error", ("protocol", "state"),
        "A listener of this server stopped or started (`state`); while SMTP is not running every connector this "
        "server is a source bridgehead of is CONN_NOT_STARTED (G40).",
        quiet="info",
        quiet_when="when it runs again",
    ),
    Ev.MASTER_STARTED: EventSpec(
        30101, "info", ("rg", "settle_s"),
        "This server runs as its group's master; it publishes once every member attached or the settle period "
        "is over.",
    ),
    Ev.MASTER_PUBLISHED: EventSpec(
        30102, "info", ("version", "reason", "attached"),
        "The master published its group's first section since it started, above every version its members hold.",
    ),
    Ev.MEMBER_ATTACHED: EventSpec(
        30103, "info", ("member", "attached", "quorum"), "A member attached to this master."
    ),
    Ev.MEMBER_DETACHED: EventSpec(
        30104, "info", ("member", "attached"), "A member detached from this master or its connection was lost."
    ),
    Ev.ATTACH_REFUSED: EventSpec(
        30105, "warning", ("member", "reason"),
        "This master refused an ATTACH (not a member of this group, or it named another master).",
    ),
    Ev.STATE_IGNORED: EventSpec(
        30106, "warning", ("connector", "reason"),
        "A state report was ignored (not a connector of this group, or an unknown state).",
    ),
    Ev.STATE_CHANGE_PINNED: EventSpec(
        30107, "info", ("connector", "state"),
        "A connector with no alternate path stays UP whatever its bridgeheads report (R121, G42).",
    ),
    Ev.QUORUM_PROBE_ANSWERED: EventSpec(
        30108, "info", ("server", "role", "master", "quorum"),
        "A master that has lacked quorum for `master_settle` asked a server of its group (DUMP) whom it follows "
        "(R80, G28): the server's role, its master and that master's quorum.",
    ),
    Ev.MASTER_CONFLICT: EventSpec(
        30109, "error", ("other_master", "reason"),
        "Another server publishes this group as its master with quorum too: two copies of the directory disagree "
        "on the group; neither publishes above the other (R80).",
    ),
    Ev.VERSION_REFUSED: EventSpec(
        30110, "warning", ("member", "version"),
        "An ATTACH reported a version of this group more than `max_version_jump` above the master's: the master "
        "does not move above it (docs/SECURITY.md).",
    ),
    Ev.VERSION_SATURATED: EventSpec(
        30111, "error", ("version",),
        "The group's major version is at 2^64-1: it cannot be published above, the version stays.",
    ),
    Ev.ATTACHED: EventSpec(30201, "info", ("master", "quorum", "attached"), "This member attached to its master."),
    Ev.MASTER_UNREACHABLE: EventSpec(
        30202, "warning", ("master", "reason", "attempt", "retry_in_s"),
        "This member lost or could not reach its master; it keeps its table and retries with backoff.",
        quiet="info",
        quiet_when=f"{_STARTUP}; for every retry after the first failure of a streak; and within `master_settle` "
        "after the master detached this member (a planned stop: its restart is expected)",
    ),
    Ev.MASTER_DETACHED: EventSpec(
        30203, "info", ("master", "reason"),
        "The master detached this member (it is stopping, or gave up the role): a planned goodbye; the member keeps "
        "its table and reconnects with backoff, quietly for `master_settle`.",
    ),
    Ev.ATTACH_REFUSED_BY_MASTER: EventSpec(
        30204, "error", ("master", "reason"),
        "The master refused this member's ATTACH (the directories disagree); the member retries.",
    ),
    Ev.POLL_DIFFERENT: EventSpec(
        30205, "info", ("master_digest", "digest"),
        "A poll found the master's digest different from this member's; the master's push follows.",
    ),
    Ev.SESSION_FAILED: EventSpec(
        30301, "warning", ("protocol", "conn", "reason", "cause"),
        "An authenticated TCP 691 session broke the protocol (a bad frame, an unexpected verb); it is closed.",
    ),
    Ev.UNEXPECTED_MESSAGE: EventSpec(
        30302, "warning", ("conn", "message"), "An authenticated peer sent a message no part of the node takes."
    ),
    Ev.CONNECTION_REFUSED: EventSpec(
        30303, "warning", ("protocol", "reason", "refused"),
        "Inbound connections were closed at once (every slot held, or over a connection rate); at most one line "
        "a second per protocol, `refused` counting them (docs/SECURITY.md).",
    ),
    Ev.CONNECTION_ERROR: EventSpec(
        30304, "error", ("conn", "peer", "reason"), "A connection failed in an unexpected way; the node goes on."
    ),
    Ev.CONNECTION_TIMEOUT: EventSpec(
        30305, "warning", ("conn", "protocol", "reason"),
        "A connection was closed: idle past its timeout, or not authenticated within `attach_timeout` of opening "
        "(an absolute deadline, whatever it sent).",
    ),
    Ev.PEER_TOO_SLOW: EventSpec(
        30306, "warning", ("conn", "peer", "unwritten", "limit", "reason"),
        "A peer did not read what the node sent (its unwritten output would pass `max_output_bytes`, or stayed "
        "unread for `attach_timeout`): its connection is dropped.",
    ),
    Ev.ENCODE_FAILED: EventSpec(
        30307, "error", ("reason",), "A message could not be encoded (a bug): it is not sent, the node goes on."
    ),
    Ev.CONNECTION_EVICTED: EventSpec(
        30308, "warning", ("conn", "protocol", "peer_host", "reason"),
        "An unauthenticated connection was closed to make room for a new one (its address held too many, or the "
        "unauthenticated budget was full: the most crowded address's oldest goes; `peer_host` is the newcomer's).",
    ),
    Ev.CONNECTION_DROPPED: EventSpec(
        30309, "warning", ("conn", "protocol", "reason"),
        "A peer sent more than 4 KiB before authenticating: its connection is closed.",
    ),
    Ev.BRIDGEHEAD_SESSION_FAILED: EventSpec(
        30401, "warning", ("connector", "reason", "failures"),
        "An outbound session of a connector this server is a source bridgehead of failed: an X-LINK2STATE "
        "session with the connected group's bridgeheads, or the probe of an SMTP connector's smart host or an "
        "X.400 connector's next-hop MTA; after `bh_fail_threshold` failures in a row the bridgehead reports "
        "CONN_NOT_AVAILABLE.",
        quiet="info",
        quiet_when=f"{_STARTUP}; and for every failure after the first warning of a run (one warning per run of "
        "failures; `bridgehead_state_committed` says when the connector is declared unavailable)",
    ),
    Ev.BRIDGEHEAD_SESSION_DONE: EventSpec(
        30402, "debug", ("connector", "exchanged", "duration_s"),
        "An outbound session ended well: an X-LINK2STATE session (`exchanged`: packets were sent; else the "
        "digests matched), or a probe that reached a smart host or next-hop MTA (`exchanged` false).",
    ),
    Ev.LINK2STATE_REJECTED: EventSpec(
        30403, "warning", ("conn", "reason", "fatal"),
        "An X-LINK2STATE dialogue broke the rules (a chunk out of order, over the declared length or a line over "
        "1,024 bytes: the MS05-021 shapes); nothing of it is merged (`fatal`: the connection closes too).",
    ),
    Ev.ORGINFO_REJECTED: EventSpec(
        30404, "warning", ("peer", "conn", "reason"),
        "A packet (from a bridgehead, or on a 691 connection) did not decode strictly, or the digest it carries is "
        "not the MD5 of its bytes: nothing in it is merged.",
    ),
    Ev.MAIL_QUEUED: EventSpec(30405, "info", ("sender", "recipients", "size"), "A (simulated) message was accepted."),
    Ev.STATE_CHANGE_SUPPRESSED: EventSpec(
        30406, "info", ("connector", "state"),
        "A local state change was not reported: this server has `suppress_state_changes` (G43).",
    ),
    Ev.ORGINFO_APPLIED: EventSpec(
        30501, "info", ("digest", "kind", "groups"),
        "The node's table changed (`kind`: major, minor, user, merge or push; `groups`: sections changed).",
    ),
    Ev.ORGINFO_LEARNED: EventSpec(
        30502, "info", ("source", "groups", "digest"),
        "A member merged a packet from outside its group (a bridgehead session, a tombstone).",
    ),
    Ev.CONNECTOR_STATE_COMMITTED: EventSpec(
        30503, "info", ("connector", "state"),
        "The master committed a connector's state: a minor update, published at once (routes reset: 4005).",
    ),
    Ev.BRIDGEHEAD_STATE_COMMITTED: EventSpec(
        30506, "info", ("connector", "bridgehead", "state"),
        "The master committed the state of one source bridgehead of a connector (after its own window, like a "
        "connector's): a minor update.",
    ),
    Ev.OSCILLATION_WINDOW_OPENED: EventSpec(
        30504, "info", ("connector", "bridgehead", "state", "window_end"),
        "A connector (or one of its source bridgeheads, `bridgehead`) went DOWN while UP: the master holds the "
        "change until `window_end` (`state_delay`) to see whether it oscillates (G41).",
    ),
    Ev.OSCILLATION_SUPPRESSED: EventSpec(
        30505, "warning", ("connector", "bridgehead", "changes", "window_start", "window_end"),
        "A connector (or one of its source bridgeheads) changed state `changes` times inside one window: it stays "
        "UP and nothing is published (G41); what holds at the window's end is reported again.",
    ),
    Ev.SECTIONS_REFUSED: EventSpec(
        30507, "warning", ("reason", "count", "guids"),
        "The table's limits refused or dropped received sections (a version jump above `max_version_jump`, the "
        "table's size, groups the directory does not know over their bounds): one line per input and reason "
        "(docs/SECURITY.md).",
    ),
    Ev.CLIENT_COMMAND_REFUSED: EventSpec(
        30601, "warning", ("command", "reason"), "An operator tool's command was refused; its connection closes."
    ),
    Ev.TOMBSTONE_INJECTED: EventSpec(
        30602, "info", ("routing_group", "version"),
        "A Remonitor tombstone was written for a deleted routing group (G53, G54).",
    ),
    Ev.INJECT_REFUSED: EventSpec(30603, "warning", ("reason",), "A tombstone request from the shell was refused."),
    Ev.FAULT_INJECTED: EventSpec(
        30604, "info", ("connector", "state"), "An operator forced this bridgehead's state for a connector."
    ),
    Ev.FAULT_REFUSED: EventSpec(30605, "warning", ("reason",), "A fault request from the shell was refused."),
    Ev.DUMP_RATE_EXCEEDED: EventSpec(
        30606, "warning", ("conn", "peer_host"),
        "A connection asked for more DUMPs than `dump_burst` at once then `dump_rate` a second: DETACH and close.",
    ),
    Ev.METRICS_UNAVAILABLE: EventSpec(
        30701, "warning", ("host", "port", "reason"),
        "The default metrics port could not be bound: the node runs without /metrics and /health.",
    ),
}  # fmt: skip

FIELDS: Mapping[str, str] = {
    "action": "what the node does about it",
    "attached": "how many members are attached to the master",
    "attempt": "the number of the attempt in this streak",
    "bridgehead": "a source bridgehead's server name (empty: the connector itself)",
    "cause": "auth (a wrong proof), decode (a bad frame), protocol (a verb out of order) or closed (before "
    "authentication completed)",
    "changes": "conflicting reports inside the window",
    "command": "the operator command (a 691 message type)",
    "conn": "the node's id of the connection",
    "count": "how many",
    "connector": "a connector's name",
    "digest": "the MD5 digest of the node's table",
    "duration_s": "seconds from the connect to the end of the session",
    "exchanged": "whether packets were sent (false: the digests matched)",
    "failures": "failed sessions in a row on this connector",
    "fatal": "whether the connection closes too",
    "first": "the first problem, with file, key path and line",
    "groups": "how many routing groups (sections) changed",
    "guids": "the first GUIDs concerned (at most three)",
    "host": "an IPv4 address",
    "kind": "the table change: major, minor, user, merge or push",
    "limit": "the limit that was reached",
    "master": "the name of the group's master",
    "master_digest": "the master's digest",
    "member": "a member's name (or its GUID when unknown)",
    "other_master": "the other server that publishes this group as its master",
    "message": "the message type",
    "metrics": "the metrics URL (empty: none)",
    "new_master": "the master this server follows now (the directory's, or the one with quorum)",
    "peer": "the peer's server name (or GUID when unknown)",
    "peer_host": "the peer's IP address",
    "peer_kind": "what the peer said it is: MEMBER, CLIENT, BRIDGEHEAD or SERVER",
    "port": "a TCP port",
    "problems": "how many problems the file has",
    "protocol": "691 (inside a routing group) or smtp (between bridgeheads)",
    "quorum": "whether the master has quorum",
    "reason": "why, in one line",
    "recipients": "how many recipients",
    "refused": "how many connections were refused since the last such line",
    "retry_in_s": "seconds until the next attempt",
    "retry_every_s": "seconds between attempts",
    "rg": "the server's routing group",
    "role": "master or member",
    "routing_group": "a routing group's GUID",
    "sender": "the envelope sender",
    "server": "the server's name",
    "settle_s": "the settle period, in seconds",
    "signal": "the signal's name",
    "size": "bytes",
    "smtp_port": "the SMTP port",
    "source": "where the packet came from",
    "state": "a connector or bridgehead state",
    "unwritten": "bytes queued for the peer and not yet written",
    "version": "a section version, major.minor.user",
    "window_end": "when the window ends (wall-clock ISO-8601)",
    "window_start": "when the window opened (wall-clock ISO-8601)",
}

_AREAS = (
    (range(0, 30000), "Exchange's own event IDs"),
    (range(30000, 30100), "The node and its directory"),
    (range(30100, 30200), "A routing group's master"),
    (range(30200, 30300), "A member"),
    (range(30300, 30400), "Connections and TCP 691 sessions"),
    (range(30400, 30500), "The bridgehead (SMTP, X-LINK2STATE)"),
    (range(30500, 30600), "The table and connector states"),
    (range(30600, 30700), "Operator commands"),
    (range(30700, 30800), "Metrics"),
)


def markdown() -> str:
    """docs/EVENTS.md: the catalog as a table per area, then the fields."""
    lines = [
        "# Events",
        "",
        "Every line a node logs is one of these events (generated from `linkstate/core/catalog.py` by",
        "`linkstate events --markdown`; `tests/test_events.py` fails when the two differ). Each line carries",
        "`event` (the name), `event_id`, `level`, `timestamp` (UTC, ISO-8601) and the bound context `node` and `rg`",
        "(the server and its routing group), then the event's fields. The Exchange 2000/2003 IDs keep their",
        f"meaning ({', '.join(map(str, EXCHANGE_IDS))}); linkstate's own events use the private range",
        f"{PRIVATE_RANGE.start}-{PRIVATE_RANGE.stop - 1}, a hundred per area. Times in fields are wall-clock",
        "ISO-8601. A level written `warning / info` is a warning, and info under the rule given below the table.",
        "",
        "```sh",
        "grep '\"event_id\": 961' EX1.log            # every failed authentication of a member, in a JSON log",
        "linkstate serve ... --log-level debug     # adds the per-session events (995, 996, 30402)",
        "```",
    ]
    by_id = sorted(CATALOG.items(), key=lambda item: item[1].event_id)
    for ids, title in _AREAS:
        rows = [(ev, spec) for ev, spec in by_id if spec.event_id in ids]
        lines += ["", f"## {title}", "", "| ID | event | level | fields | meaning |", "|---:|---|---|---|---|"]
        notes = []
        for ev, spec in rows:
            level = f"{spec.level} / {spec.quiet}" if spec.quiet else spec.level
            fields = ", ".join(f"`{f}`" for f in spec.fields) or "—"
            lines.append(f"| {spec.event_id} | `{ev.value}` | {level} | {fields} | {spec.meaning} |")
            if spec.quiet:
                notes.append(f"- `{ev.value}` is {spec.quiet} {spec.quiet_when}.")
        if notes:
            lines += ["", *notes]
    lines += ["", "## Fields", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in sorted(FIELDS.items())]
    return "\n".join(lines) + "\n"
