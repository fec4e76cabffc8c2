"""The JSON form of OrgInfo (proto.jsonform): round trips and path-naming errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from strategies import orginfos

from proto.codec import decode_tolerant, digest, encode
from proto.jsonform import JsonFormError, carried_digest, from_json, to_json
from proto.model import Connector, OrgInfo, RoutingGroup

SAMPLE = (Path(__file__).resolve().parent.parent / "vectors" / "seed-sample-l8818.txt").read_bytes()


@settings(deadline=None, max_examples=60)
@given(orginfos())
def test_json_round_trip(org: OrgInfo) -> None:
    obj = to_json(org)
    assert from_json(json.loads(json.dumps(obj))) == org
    assert obj["digest"] == obj["computed_digest"] == digest(org)
    assert obj["length"] == len(encode(org)) - 10


def test_sample_json_layout() -> None:
    d = decode_tolerant(SAMPLE)
    obj = to_json(d)
    assert list(obj) == ["digest", "computed_digest", "length", "warnings", "routing_groups"]
    assert obj["digest"] == "a9c421ebe14f06710f6ab596345ac615"
    assert obj["length"] == 0x457
    assert len(obj["warnings"]) == 11 and set(obj["warnings"][0]) == {"offset", "reason"}
    rg = obj["routing_groups"][0]
    assert rg["version"] == {"major": 10, "minor": 0, "user": 0}
    assert set(rg["addresses"]) == {"smtp", "x400", "x500"}
    assert rg["members"][0] == {
        "guid": "2d07476703630a4d87a651498e2d73b9",
        "connected": True,
        "state_flags": 1,
        "build": 0x1AAE,
        "service_status": "0701000000000101",
    }
    c = rg["connectors"][0]
    assert c["max_size"] is None and c["large_threshold"] is None
    assert "reserved3" not in c and "reserved4" not in c
    assert c["address_spaces"] == [{"type": "SMTP", "address": "*", "cost": 1}]
    assert c["bridgeheads"] == [
        {"guid": "2fdb30b62e4ea949a71f91f319535143", "state": "CONN_AVAIL", "fqdn": "RGR-65-02.domain.com"}
    ]
    assert c["state"] == "UP" and c["target_bridgeheads"] == []
    assert from_json(obj) == d.orginfo
    assert carried_digest(obj) == d.digest


def test_reserved_lists_appear_when_non_empty() -> None:
    connector = Connector(guid="3" * 32, reserved3=("x",))
    org = OrgInfo((RoutingGroup(guid="1" * 32, master="2" * 32, connectors=(connector,)),))
    c = to_json(org)["routing_groups"][0]["connectors"][0]
    assert c["reserved3"] == ["x"] and "reserved4" not in c
    assert from_json(to_json(org)) == org


def _base() -> dict[str, Any]:
    return to_json(decode_tolerant(SAMPLE))


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda o: o.update(extra=1), "$.extra"),
        (lambda o: o.update(routing_groups={}), "$.routing_groups"),
        (lambda o: o["routing_groups"][0].update(guid="xyz"), "$.routing_groups[0].guid"),
        (lambda o: o["routing_groups"][0].pop("master"), "$.routing_groups[0].master"),
        (lambda o: o["routing_groups"][0]["version"].update(major=-1), "$.routing_groups[0].version.major"),
        (lambda o: o["routing_groups"][0]["members"][1].update(connected="YES"),
         "$.routing_groups[0].members[1].connected"),
        (lambda o: o["routing_groups"][0]["members"][1].update(guid=o["routing_groups"][0]["members"][0]["guid"]),
         "$.routing_groups[0].members[1].guid"),
        (lambda o: o["routing_groups"][0]["connectors"][0].update(max_size=0xFFFFFFFF),
         "$.routing_groups[0].connectors[0].max_size"),
        (lambda o: o["routing_groups"][0]["connectors"][0].update(cost=1.5),
         "$.routing_groups[0].connectors[0].cost"),
        (lambda o: o["routing_groups"][0]["connectors"][0]["reject"].__setitem__(2, "a\nb"),
         "$.routing_groups[0].connectors[0].reject[2]"),
        (lambda o: o["routing_groups"][0]["connectors"][0]["address_spaces"][0].update(cost=True),
         "$.routing_groups[0].connectors[0].address_spaces[0].cost"),
        (lambda o: o["routing_groups"][0]["connectors"][0]["bridgeheads"][0].update(state="BUSY"),
         "$.routing_groups[0].connectors[0].bridgeheads[0].state"),
        (lambda o: o["routing_groups"][0]["connectors"][0].update(state=None),
         "$.routing_groups[0].connectors[0].state"),
        (lambda o: o["routing_groups"][0]["connectors"][0].update(schedule=2**64),
         "$.routing_groups[0].connectors[0].schedule"),
    ],
)  # fmt: skip
def test_bad_json_names_its_path(edit: Any, path: str) -> None:
    obj = _base()
    edit(obj)
    with pytest.raises(JsonFormError) as info:
        from_json(obj)
    assert info.value.path == path
    assert str(info.value).endswith(f" at {path}")


def test_lenient_enum_spellings_and_defaults() -> None:
    obj = _base()
    c = obj["routing_groups"][0]["connectors"][0]
    c["bridgeheads"][0]["state"] = "vs_conn_not_started"
    c["state"] = "Down"
    for key in ("schedule", "scope", "accept", "address_spaces"):
        del c[key]
    org = from_json(obj)
    conn = org.routing_groups[0].connectors[0]
    assert conn.bridgeheads[0].state.value == "CONN_NOT_STARTED"
    assert conn.state.value == "DOWN"
    assert conn.schedule == 0 and conn.accept == () and conn.address_spaces == ()
