"""linkstate.core.routes: the answers a node gives (`NodeRoutes`, what a tool's ROUTE ASK gets), field by field.

The message class of a question reaches the router (sender restrictions, size, priority, public-folder referral:
each one moves the answer to another connector here), each node draws its bridgehead choices from its own seed,
and the node remembers its most recent `REMEMBERED` questions.
"""

from __future__ import annotations

from linkstate.core.routes import REMEMBERED, NodeRoutes
from linkstate.core.topology import Topology, parse_topology
from proto import rg691
from tests.core.failure_helpers import failover
from tests.core.role_helpers import context

ALICE = "CN=Alice,CN=Users,DC=example,DC=com"  # in sales
MALLORY = "CN=Mallory,CN=Users,DC=example,DC=com"

RESTRICTED = """
[organization]
name = "Example"
domain = "example.com"
secret = "routes-secret"

[settings]
check_connector_restrictions = true

[[routing_groups]]
name = "Hub"
master = "HUB-1"

[[servers]]
name = "HUB-1"
routing_group = "Hub"

[[servers]]
name = "HUB-2"
routing_group = "Hub"

[[servers]]
name = "HUB-3"
routing_group = "Hub"

[[groups]]
name = "sales"
dn = "CN=Sales,CN=Users,DC=example,DC=com"
members = ["CN=Alice,CN=Users,DC=example,DC=com"]

# cheap, but only for sales, small normal-or-high mail, never public-folder referrals
[[connectors]]
name = "Fast"
type = "smtp"
routing_group = "Hub"
cost = 1
source_bridgeheads = ["HUB-2", "HUB-3"]
dns_routed = true
address_spaces = [{ type = "SMTP", address = "*", cost = 1 }]
accept_by_default = false
accept = ["sales"]
max_size_kb = 1
allowed_priorities = ["high", "normal"]
no_pf_referrals = true

[[connectors]]
name = "Slow"
type = "smtp"
routing_group = "Hub"
cost = 5
source_bridgeheads = ["HUB-3"]
dns_routed = true
address_spaces = [{ type = "SMTP", address = "*", cost = 5 }]
"""


def node_routes(topo: Topology, me: str) -> NodeRoutes:
    return NodeRoutes(context(topo, me))


def test_an_external_answer_names_the_connector_its_address_space_and_the_next_hop() -> None:
    topo = parse_topology(RESTRICTED, "restricted.toml")
    routes = node_routes(topo, "HUB-3")
    fast, hub = topo.connector("Fast").guid, topo.routing_group("Hub").guid
    got = routes.answer(rg691.RouteQuery(topo.server("HUB-3").guid, "ADDRESS", "bob@contoso.com", sender=ALICE))
    # HUB-3 is a source bridgehead of Fast: it sends itself, DNS-routed
    assert got == rg691.RouteAnswer("route", fast, 1, "DNS", (hub,), "SMTP", "*", 1, fast)


def test_the_message_class_of_a_question_reaches_the_router() -> None:
    topo = parse_topology(RESTRICTED, "restricted.toml")
    routes = node_routes(topo, "HUB-1")
    me = topo.server("HUB-1").guid

    def connector(**kw: object) -> str:
        answer = routes.answer(rg691.RouteQuery(me, "ADDRESS", "bob@contoso.com", **kw))  # type: ignore[arg-type]
        return topo.connector_by_guid(answer.connector).name  # type: ignore[union-attr]

    assert connector(sender=ALICE, size=512) == "Fast"
    assert connector() == "Fast"  # no sender: sender restrictions are not checked
    assert connector(sender=MALLORY) == "Slow"
    assert connector(sender=ALICE, size=2048) == "Slow"
    assert connector(sender=ALICE, priority="low") == "Slow"
    assert connector(sender=ALICE, referral=True) == "Slow"


def test_each_node_draws_bridgehead_choices_from_its_own_seed() -> None:
    """Asked where HUB-1 sends (it is no source bridgehead of Fast), each node picks one of HUB-2 and HUB-3 per
    destination, repeatably; two nodes do not make the same picks."""
    topo = parse_topology(RESTRICTED, "restricted.toml")
    me = topo.server("HUB-1").guid
    questions = [rg691.RouteQuery(me, "ADDRESS", f"user@domain{i}.example") for i in range(16)]
    picks = {name: [node_routes(topo, name).answer(q).next_hop for q in questions] for name in ("HUB-1", "HUB-2")}
    assert set(picks["HUB-1"]) == set(picks["HUB-2"]) == {"HUB-2", "HUB-3"}
    assert picks["HUB-1"] != picks["HUB-2"]
    assert picks["HUB-1"] == [node_routes(topo, "HUB-1").answer(q).next_hop for q in questions]


def test_a_group_answer_has_a_path_and_no_address_space() -> None:
    topo = failover()
    routes = node_routes(topo, "HUB-M")
    hub, branch = topo.routing_group("Hub").guid, topo.routing_group("Branch").guid
    got = routes.answer(rg691.RouteQuery(topo.server("HUB-M").guid, "GROUP", branch))
    assert got == rg691.RouteAnswer("route", topo.connector("Hub-Branch").guid, 1, "HUB-A", (hub, branch))


def test_a_question_it_cannot_answer_is_unreachable_with_nothing_else() -> None:
    topo = failover()
    routes = node_routes(topo, "HUB-M")
    got = routes.answer(rg691.RouteQuery("f" * 32, "GROUP", topo.routing_group("Branch").guid))
    assert got == rg691.RouteAnswer("unreachable")


def test_it_remembers_the_most_recent_questions() -> None:
    topo = failover()
    routes = node_routes(topo, "HUB-M")
    me = topo.server("HUB-M").guid
    questions = [rg691.RouteQuery(me, "ADDRESS", f"user@d{i}.example") for i in range(REMEMBERED + 2)]
    for q in questions:
        routes.route(q)
    assert list(routes.asked) == questions[2:]
    routes.route(questions[2])  # asked again: the most recent now
    assert list(routes.asked) == [*questions[3:], questions[2]]
