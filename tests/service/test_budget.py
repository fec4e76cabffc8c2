"""Connection budgets (linkstate.service.budget): the rules hold for every sequence of arrivals and logins."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.topology import Settings
from linkstate.service.budget import ConnBudget

LIMITS = Settings(max_connections=8, max_unauthenticated=5, max_per_address=2, connection_burst=10**6,
                  unknown_address_burst=10**6)  # fmt: skip
actions = st.sampled_from(["open", "login", "close", "out"])
protos = st.sampled_from(["691", "smtp"])
steps = st.lists(st.tuples(actions, protos, st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 40)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_sequence_keeps_the_bounds(seq: list[tuple[str, str, str, int]]) -> None:
    budget = ConnBudget(LIMITS)
    live: dict[int, tuple[str, str, bool]] = {}  # conn -> (proto, address, authenticated)
    next_id = 1000
    for action, proto, address, pick in seq:
        if action == "open":
            next_id += 1
            verdict = budget.admit(next_id, proto, address)
            if verdict.evict is not None:
                crowd = Counter(a for q, a, ok in live.values() if q == proto and not ok)
                victim = live.pop(verdict.evict)
                assert not victim[2] and victim[0] == proto  # only an unauthenticated one of the same protocol
                assert crowd[victim[1]] == max(crowd.values())  # from the most crowded address
            if verdict.admitted:
                live[next_id] = (proto, address, False)
            else:  # refused only when even an eviction would leave no slot, and then nothing is evicted
                assert verdict.evict is None
                room = budget.held(proto) - (1 if budget.unauthenticated(proto) else 0)
                assert room >= LIMITS.max_connections
        elif action == "out":
            next_id += 1
            budget.outbound(next_id, proto)
            live[next_id] = (proto, "", True)
        elif live:
            conn = sorted(live)[pick % len(live)]
            if action == "login":
                budget.authenticated(conn)
                live[conn] = (live[conn][0], live[conn][1], True)
            else:
                budget.release(conn)
                budget.release(conn)  # idempotent
                del live[conn]
        for p in ("691", "smtp"):
            unauth = [c for c, (q, _, ok) in live.items() if q == p and not ok]
            assert budget.unauthenticated(p) == len(unauth) <= LIMITS.max_unauthenticated
            assert budget.held(p) == sum(1 for q, _, _ in live.values() if q == p)
            for a in "abcd":
                assert sum(1 for c in unauth if live[c][1] == a) <= LIMITS.max_per_address


def test_the_most_crowded_address_makes_room_with_its_oldest_connection() -> None:
    budget = ConnBudget(LIMITS)
    assert budget.admit(1, "691", "a").admitted and budget.admit(2, "691", "a").admitted
    v = budget.admit(3, "691", "a")
    assert v.admitted and v.evict == 1 and "from a" in v.reason
    budget.admit(4, "691", "b")
    budget.admit(5, "691", "c")
    budget.authenticated(2)
    budget.admit(6, "691", "d")
    v = budget.admit(7, "691", "d")
    assert v.admitted and v.evict is None  # 3, 4, 5, 6, 7 unauthenticated: at the bound, not over
    v = budget.admit(8, "691", "c")  # d holds two of them: its oldest goes, not a, b or c's single handshake
    assert v.admitted and v.evict == 6 and "unauthenticated 691" in v.reason
    v = budget.admit(9, "691", "e")  # one each now (a: 3, b: 4, c: 5 and 8, d: 7): c's oldest
    assert v.evict == 5
    assert budget.admit(9, "smtp", "a").admitted  # another protocol, another budget


def test_new_connections_from_one_address_are_rate_limited() -> None:
    budget = ConnBudget(Settings(max_connections=1000, max_unauthenticated=999, max_per_address=999,
                                     connection_rate=2.0, connection_burst=3))  # fmt: skip
    verdicts = [budget.admit(i, "691", "a", now=0.0) for i in range(5)]
    assert [v.admitted for v in verdicts] == [True, True, True, False, False]
    assert "new connections a second" in verdicts[3].reason
    assert budget.admit(10, "smtp", "b", now=0.0).admitted  # another address has its own bucket
    assert not budget.admit(11, "smtp", "a", now=0.0).admitted  # both protocols draw on one bucket per address
    assert budget.admit(12, "691", "a", now=0.5).admitted  # half a second later: one more
    assert budget.held("691") == 4  # refused connections never took a slot


def test_strangers_share_one_rate_and_addresses_that_authenticated_bypass_it() -> None:
    budget = ConnBudget(Settings(max_connections=1000, max_unauthenticated=999, max_per_address=999,
                                     unknown_address_rate=1.0, unknown_address_burst=2))  # fmt: skip
    assert budget.admit(1, "691", "known", now=0.0).admitted
    budget.authenticated(1)
    assert budget.admit(2, "691", "x", now=0.0).admitted
    v = budget.admit(3, "smtp", "y", now=0.0)  # the strangers' burst is spent (known's first try counted in it)
    assert not v.admitted and "unknown addresses" in v.reason
    assert all(budget.admit(10 + i, "691", "known", now=0.0).admitted for i in range(5))  # known: its own rate only
    assert budget.admit(20, "smtp", "z", now=1.0).admitted  # a second later, one more stranger
