"""routing.connector_pinned (one connector's search) agrees with pinned_connectors (the whole table's)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.routing import connector_pinned, pinned_connectors
from proto.model import OrgInfo
from tests.strategies import orginfos


@given(orginfos(max_groups=5), st.sampled_from(["general", "seed"]))
@settings(max_examples=200, deadline=None)
def test_one_connector_agrees_with_the_whole_table(org: OrgInfo, leaf_rule: str) -> None:
    pinned = pinned_connectors(org, leaf_rule)
    guids = {c.guid for rg in org.routing_groups for c in rg.connectors}
    for guid in guids:
        assert connector_pinned(org, guid, leaf_rule) == (guid in pinned)
    assert not connector_pinned(org, "f" * 32, leaf_rule)
