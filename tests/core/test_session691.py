"""The 691 connection state machine: authentication first, every (state, message) pair handled, never a raise."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.machine import edges, reachable
from linkstate.core.session691 import (
    INITIAL,
    PRE_AUTH_MAX_FRAME,
    TRANSITIONS,
    Authenticated,
    Fault,
    Input,
    S,
    Session691,
)
from proto import rg691
from tests.proto.test_rg691 import messages

SECRET = b"s3cret"
A, B = "aa" * 16, "bb" * 16


def pair(secret_b: bytes = SECRET) -> tuple[Session691, Session691]:
    counter = itertools.count()
    nonce = lambda: f"{next(counter):032x}"  # noqa: E731
    initiator = Session691(initiator=True, local_guid=A, secret=SECRET, nonce=nonce)
    responder = Session691(initiator=False, local_guid=B, secret=secret_b, nonce=nonce)
    return initiator, responder


def pump(a: Session691, b: Session691) -> tuple[list[object], list[object]]:
    got_a: list[object] = []
    got_b: list[object] = []
    for _ in range(10):
        out_b, out_a = b.take_pending(), a.take_pending()
        if not out_a and not out_b:
            break
        if out_b:
            got_a.extend(a.receive(out_b))
        if out_a:
            got_b.extend(b.receive(out_a))
    return got_a, got_b


def test_mutual_authentication_then_messages_flow() -> None:
    a, b = pair()
    got_a, got_b = pump(a, b)
    assert a.authenticated and b.authenticated
    assert got_b == [Authenticated(A, "MEMBER")] and got_a == [Authenticated(B, "SERVER")]
    a.send(rg691.SimplePoll("cc" * 16))
    _, got_b = pump(a, b)
    assert got_b == [rg691.SimplePoll("cc" * 16)]


def test_wrong_secret_closes_both_ends_with_961() -> None:
    a, b = pair(secret_b=b"other")
    got_a, _ = pump(a, b)
    assert a.closed and [type(r) for r in got_a] == [Fault]
    assert got_a[0].event_id == 961  # type: ignore[attr-defined]
    assert not b.authenticated


@given(messages)
@settings(max_examples=200, deadline=None)
def test_nothing_but_the_next_auth_step_is_accepted_before_authentication(msg: rg691.Message) -> None:
    _, b = pair()
    b.take_pending()
    results = b.receive(rg691.encode_message(msg))
    if isinstance(msg, rg691.AuthHello):
        assert b.state is S.AWAIT_PROOF and results == []
    else:
        assert b.closed and len(results) == 1 and isinstance(results[0], Fault)


@given(st.sampled_from([s for s in S if s is not S.CLOSED]), st.lists(messages, min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_every_state_and_message_pair_is_handled_without_raising(state: S, msgs: list[rg691.Message]) -> None:
    for initiator in (True, False):
        session, _ = pair() if initiator else pair()[::-1]
        session.state = state
        if state is not S.AWAIT_BANNER:
            session._framer.expect_banner = False
        for msg in msgs:
            results = session.receive(rg691.encode_message(msg))
            assert all(isinstance(r, (Fault, Authenticated, *rg691.Message.__args__)) for r in results)  # type: ignore[attr-defined]
            if session.closed:
                assert session.receive(b"anything") == []
                break


def test_a_big_frame_before_authentication_is_refused_at_its_header() -> None:
    _, b = pair()
    results = b.receive(b"{%08x} AUTH HELLO " % (PRE_AUTH_MAX_FRAME + 1))
    assert b.closed and isinstance(results[0], Fault) and results[0].event_id == 961


def test_the_table_covers_every_state_and_input() -> None:
    assert set(TRANSITIONS) == set(itertools.product(S, Input))


def test_every_state_is_reachable_from_the_table_alone() -> None:
    assert reachable(TRANSITIONS, INITIAL) == set(S)
    # and every state but CLOSED can close: no input leaves a session stuck open
    closing = {state for state, _, _, target in edges(TRANSITIONS) if target is S.CLOSED}
    assert closing == set(S)
