"""`linkstate fuzz`: the regression corpus replayed, every target smoke-run, findings written and reproduced, the
fallback engine, the CLI surface, and the live-node fuzzer against real nodes on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from linkstate.cli.main import cli, main
from linkstate.core.topology import Topology
from linkstate.fuzz import engine, live, mutate
from linkstate.fuzz.base import WAIVERS, Finding, enforcing, splits
from linkstate.fuzz.targets import TARGETS, load
from linkstate.service.client import ClientError, DumpResult
from linkstate.service.node import NodeService
from linkstate.service.topofile import load_topology
from proto import link2state as proto_l2s
from proto import rg691
from proto.decode import decode_strict, decode_tolerant
from proto.model import OrgInfo, RoutingGroup, Version
from tests.service.node_cli_helpers import SECRET, free_ports, write_topology

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def test_the_regression_corpus_passes_every_check() -> None:
    """Every input that ever failed, replayed with every check on (waivers too): none fails again."""
    verdicts = list(engine.replay([FUZZ / "regressions"]))
    assert {v.target for v in verdicts} >= {"orginfo", "topology"}
    assert [(v.path.name, v.reason) for v in verdicts if not v.ok] == []


def test_the_seed_corpus_passes_and_covers_every_target() -> None:
    verdicts = list(engine.replay([FUZZ / "corpus"]))
    assert {v.target for v in verdicts} == set(TARGETS)
    assert [(v.path.name, v.reason) for v in verdicts if not v.ok] == []


def test_pending_inputs_and_waivers_go_together() -> None:
    """fuzz/pending holds inputs of findings another open issue owns, each waived during runs (WAIVERS): every check
    fails them until that fix lands, then they move to fuzz/regressions and their waiver goes. Issue 11 fixed the
    two it had (now fuzz/regressions/rg691), so none is pending and no waiver is left."""
    pending = sorted((FUZZ / "pending").rglob("*-*")) if (FUZZ / "pending").is_dir() else []
    with enforcing(""):
        waived = list(engine.replay(pending, waive=True))
    assert all(v.ok for v in waived)
    checked = {v.path.name: v for v in engine.replay(pending)}
    assert not any(v.ok for v in checked.values()), "a pending finding is fixed: move it to fuzz/regressions"
    assert bool(pending) == bool(WAIVERS)


@pytest.fixture
def planted_bug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Issue 11's item 7 put back, to show the pipeline finds what it exists to find: the 691 frame decoder accepts
    `{len}` strings holding CR, LF or NUL again (here, and in the libFuzzer worker through a sitecustomize that
    patches proto.rg691 once the rg691 target is imported, after atheris has instrumented it). The input that
    finds it is the issue's, now a regression."""
    import re

    from proto import rg691

    never = re.compile(rb"(?!x)x")
    monkeypatch.setattr(rg691, "_FORBIDDEN", never)
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plant), os.environ.get("PYTHONPATH")])))
    return FUZZ / "regressions" / "rg691" / "state-service-string-crlf"


_SITECUSTOMIZE = """
import importlib, re, sys

_import_module = importlib.import_module


def import_module(name, package=None):
    # the worker loads its target with importlib.import_module, after atheris has instrumented proto.rg691
    module = _import_module(name, package)
    if name == "linkstate.fuzz.targets.rg691":
        sys.modules["proto.rg691"]._FORBIDDEN = re.compile(rb"(?!x)x")
    return module


importlib.import_module = import_module
"""


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_target_smoke_runs_without_findings(target: str, tmp_path: Path) -> None:
    """A few hundred coverage-guided executions from the seed corpus (CI's smoke run)."""
    opts = engine.Options(time=60, runs=150, corpus=tmp_path / "corpus", findings=tmp_path / "findings", seed=7)
    stats = engine.run(target, opts, lambda line: None)
    assert stats.findings == []
    assert stats.execs >= 150
    if stats.engine == "atheris":
        assert stats.coverage is not None and stats.coverage > 100
        assert any((tmp_path / "corpus").iterdir())  # new inputs go to the working corpus, not the seed corpus


def test_a_finding_is_written_with_its_reproduction(tmp_path: Path, planted_bug: Path) -> None:
    """With a bug planted, libFuzzer stops on the input that shows it, writes it, and the reported command
    reproduces it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    crlf = planted_bug
    (corpus / "seed").write_bytes(crlf.read_bytes())
    lines: list[str] = []
    opts = engine.Options(time=30, runs=50, corpus=corpus, findings=tmp_path / "findings", seed=1)
    stats = engine.run("rg691", opts, lines.append)
    assert len(stats.findings) == 1
    path, reason = stats.findings[0]
    assert "does not re-encode" in reason and path.read_bytes() == crlf.read_bytes()
    assert f"reproduce: linkstate fuzz replay {path}" in "\n".join(lines)
    result = CliRunner().invoke(cli, ["fuzz", "replay", str(path)])
    assert result.exit_code == 1 and "does not re-encode" in result.output and "0 passed, 1 failed" in result.output


def test_the_hypothesis_engine_runs_the_same_target_and_says_so(tmp_path: Path) -> None:
    lines: list[str] = []
    opts = engine.Options(runs=60, engine="hypothesis", corpus=tmp_path, findings=tmp_path / "f")
    stats = engine.run("orginfo", opts, lines.append)
    assert stats.engine == "hypothesis" and stats.findings == [] and stats.execs >= 60
    assert "with hypothesis" in lines[0] and "no coverage" in stats.line()


def test_the_hypothesis_engine_writes_its_shrunk_finding(tmp_path: Path, planted_bug: Path) -> None:
    (tmp_path / "seed").write_bytes(planted_bug.read_bytes())
    opts = engine.Options(runs=2000, engine="hypothesis", corpus=tmp_path, findings=tmp_path / "f")
    stats = engine.run("rg691", opts, lambda line: None)
    assert len(stats.findings) == 1
    path, reason = stats.findings[0]
    assert "Finding" in reason
    with pytest.raises(Finding):
        load("rg691").check(path.read_bytes())


def test_mutators_are_reproducible_and_reach_structure() -> None:
    seed = (FUZZ / "corpus" / "orginfo" / "example-seattle").read_bytes()
    a = [mutate.orginfo_mutate(seed, 1 << 16, random.Random(i)) for i in range(40)]
    b = [mutate.orginfo_mutate(seed, 1 << 16, random.Random(i)) for i in range(40)]
    assert a == b
    outputs = [x for x in a if x is not None]
    decodable = [x for x in outputs if _decodes(x)]
    assert len(outputs) >= 30 and 10 <= len(decodable) < len(outputs)  # mostly valid tables, some broken ones
    stream = (FUZZ / "corpus" / "rg691" / "responder-split0").read_bytes()
    assert {mutate.rg691_mutate(stream, 1 << 16, random.Random(i)) for i in range(20)} - {None, stream}


def _decodes(data: bytes) -> bool:
    try:
        decode_tolerant(data)
    except Exception:
        return False
    return True


def test_splits_cover_whole_and_bytewise() -> None:
    assert splits(b"abcdef", 0) == [b"abcdef"]
    assert splits(b"abc", 1) == [b"a", b"b", b"c"]
    assert b"".join(splits(b"abcdefgh" * 10, 9)) == b"abcdefgh" * 10


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_replay_names_the_target_from_the_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["fuzz", "replay", "--quiet", str(FUZZ / "regressions")])
    assert result.exit_code == 0 and ", 0 failed" in result.output
    stray = tmp_path / "input.bin"
    stray.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["fuzz", "replay", str(stray)])
    assert result.exit_code == 2 and "use --target" in result.output
    result = CliRunner().invoke(cli, ["fuzz", "replay", "--target", "orginfo", str(stray)])
    assert result.exit_code == 0 and "1 passed, 0 failed" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["orginfo", "--time", "inf"], "--time must be a positive number of seconds, got inf"),
        (["--compare-mutators", "orginfo"], "name its targets with --target (orginfo, rg691), not 'orginfo'"),
        (["orginfo", "--enforce", "bogus"], "unknown waiver 'bogus': no check is waived now (only 'all')"),
        (["orginfo", "--corpus", "/dev/null"], "--corpus /dev/null is not a directory"),
        (["orginfo", "--dict", "{passwd}"], "is not a libFuzzer dictionary: line 1 is not name=\"value\""),
        (["replay", "--timeout", "-1", "{regressions}"], "'--timeout': -1.0 is not in the range"),
        (["replay", "--target", "orginfo", "/dev/null"], "not a regular file or a directory: /dev/null"),
    ],
)
def test_cli_bad_arguments_are_one_line_and_exit_2(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each is refused before any worker starts: one `error:` line, exit 2, nothing on stdout (no run, no
    internal error, no per-file failure, no '(no output)' from a worker that libFuzzer refused to start)."""
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    argv = [a.format(passwd=tmp_path / "passwd", regressions=FUZZ / "regressions" / "orginfo") for a in args]
    monkeypatch.setattr(sys, "argv", ["linkstate", "fuzz", *argv])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    assert (info.value.code, out.out) == (2, "")
    assert out.err.startswith("error: ") and out.err.count("\n") == 1 and says in out.err, out.err


def test_cli_refuses_a_node_that_is_not_loopback(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "t.toml", ["A"], [6910], smtp=[2525])
    result = CliRunner().invoke(cli, ["fuzz", "node", "192.0.2.10:691", "--topology", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "not a loopback address" in result.output
    assert "--i-own-this-target 192.0.2.10" in result.output
    assert live.allowed_target("192.0.2.10", ("192.0.2.10",)) == "192.0.2.10"
    assert live.allowed_target("127.0.0.2", ()) == "127.0.0.2"


# ------------------------------------------------------------------------------------------------ live node


def test_table_problem_accepts_only_valid_updates() -> None:
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    old = OrgInfo((RoutingGroup(guid=a, master=a, version=Version(2)), RoutingGroup(guid=b, master=b)))
    frame = decode_strict(_encode(old))
    assert live.table_problem(old, frame, set(), set()) == ""
    newer = OrgInfo((RoutingGroup(guid=a, master=a, version=Version(3)), RoutingGroup(guid=b, master=b)))
    assert live.table_problem(old, decode_strict(_encode(newer)), set(), {a}) == ""
    assert "nothing valid carried" in live.table_problem(old, decode_strict(_encode(newer)), set(), set())
    assert live.table_problem(old, decode_strict(_encode(newer)), {newer.routing_groups[0]}, set()) == ""
    older = OrgInfo((RoutingGroup(guid=a, master=a, version=Version(1)), RoutingGroup(guid=b, master=b)))
    assert "went back" in live.table_problem(old, decode_strict(_encode(older)), set(), {a})
    gone = OrgInfo((RoutingGroup(guid=a, master=a, version=Version(2)), RoutingGroup(guid=c, master=c)))
    assert "disappeared" in live.table_problem(old, decode_strict(_encode(gone)), set(), {a, b, c})
    lying = dataclasses.replace(frame, digest="0" * 32)
    assert "hashes to" in live.table_problem(old, lying, set(), set())


def _encode(org: OrgInfo) -> bytes:
    from proto.encode import encode

    return encode(org)


def test_the_tables_a_live_batch_sends_over_x_link2state_can_travel(tmp_path: Path) -> None:
    """The OrgInfo mutator writes CR, LF and NUL on purpose; such a table has no X-LINK2STATE form (chunks are
    lines), and the client session building its chunks raised EncodeError, which ended `linkstate fuzz node`
    with 'error: internal: EncodeError' (seed 7 against the single-group example's master)."""
    ports, smtp = free_ports(2), free_ports(2)
    topo = load_topology(write_topology(tmp_path / "t.toml", ["A", "B"], ports, smtp=smtp))
    from linkstate.core.lsdb import LinkStateDB

    table = LinkStateDB.from_topology(topo).frame()
    plan = live.Plan("127.0.0.1", ports[0], smtp[0], topo.secret, topo, batch_size=50)
    frames = [st.payload for seed in range(20) for st in live.make_batch(plan, table, random.Random(seed))
              if st.channel == "smtp-auth"]  # fmt: skip
    assert len(frames) > 100 and len(set(frames)) > 50
    for frame in frames:
        assert len(proto_l2s.Chunker(frame)) >= 1
    crlf = live.Step("smtp-auth", "BRIDGEHEAD", topo.servers[1].guid, table[:100] + b"\r\n" + table[100:])
    trio.run(live._send_smtp_auth, plan, crlf)  # nothing to send: returns before connecting (no node listens)


def test_member_steps_of_a_live_batch_mostly_attach_first(tmp_path: Path) -> None:
    """A master takes polls, packets and state reports only from attached members: most MEMBER connections of a
    batch open with a valid ATTACH to the target in the name of another server of its group, so the fuzzer still
    reaches the master's handlers (and some do not, to keep the refusal tested)."""
    from linkstate.core.lsdb import LinkStateDB

    ports, smtp = free_ports(2), free_ports(2)
    topo = load_topology(write_topology(tmp_path / "t.toml", ["A", "B"], ports, smtp=smtp))
    table = LinkStateDB.from_topology(topo).frame()
    plan = live.Plan("127.0.0.1", ports[0], smtp[0], topo.secret, topo, batch_size=50)
    members = [st for seed in range(10) for st in live.make_batch(plan, table, random.Random(seed))
               if st.channel == "691-auth" and st.kind == "MEMBER"]  # fmt: skip
    target, other = topo.server("A"), topo.server("B")
    attach = rg691.encode_message(rg691.Attach(other.guid, topo.routing_group(target.routing_group).guid,
                                               target.guid, "0" * 32, 0, 0, 0, "f" * 32))  # fmt: skip
    first = [st.payload.startswith(attach) and st.guid == other.guid for st in members]
    assert len(members) > 20 and 0.5 < sum(first) / len(first) < 1


async def test_a_live_run_paces_its_connections_and_asks_a_refused_dump_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Against `cluster up`'s single-group master with default settings, `fuzz node EX1 --seed 7` reported
    'the node no longer answers DUMP' after ~13 s: its own ~25 connections a second had passed the node's
    per-address connection_rate (20/s, docs/SECURITY.md) and the DUMP after the batch was refused like them.
    Now connections open at most at half that rate, and a refused DUMP is asked again before it counts."""
    ports, smtp = free_ports(2), free_ports(2)
    path = write_topology(tmp_path / "t.toml", ["A", "B"], ports, smtp=smtp)
    path.write_text(path.read_text() + "\n[settings]\nconnection_rate = 4\n")
    topo = load_topology(path)
    plan = live.Plan("127.0.0.1", ports[0], smtp[0], topo.secret, topo, batches=1, batch_size=8)
    table = dump_result(topo)
    opened: list[float] = []
    dumps: list[float] = []

    async def send_step(plan: live.Plan, step: live.Step) -> None:
        opened.append(trio.current_time())

    async def dump_frame(*args: object, **kwargs: object) -> object:
        dumps.append(trio.current_time())
        if len(dumps) in (2, 3):  # the first after the batch, and its first retry: refused
            raise ClientError("closed", "127.0.0.1:1 closed the connection before its 691 banner")
        return table

    monkeypatch.setattr(live, "send_step", send_step)
    monkeypatch.setattr(live, "dump_frame", dump_frame)
    report = await live.run(plan, lambda line: None)
    assert report.failure == "" and report.batches == 1 and len(opened) == 8
    assert min(b - a for a, b in itertools.pairwise(opened)) >= 1 / (4 * live.PACE_SHARE) - 1e-9
    assert len(dumps) == 4 and dumps[3] - dumps[1] >= 2 * live.DUMP_RETRY
    dumps.clear()

    async def dead(*args: object, **kwargs: object) -> object:
        dumps.append(trio.current_time())
        raise ClientError("refused", "cannot connect to 127.0.0.1:1: Connection refused")

    monkeypatch.setattr(live, "dump_frame", dead)
    problem, after = await live._check(plan, table.decoded.orginfo, [], set())
    assert after is None and len(dumps) == live.DUMP_ATTEMPTS
    assert problem == f"the node no longer answers DUMP ({live.DUMP_ATTEMPTS} attempts): cannot connect to " \
                      "127.0.0.1:1: Connection refused"


def dump_result(topo: Topology) -> DumpResult:
    """What a node of `topo` answers to DUMP, without a node."""
    from linkstate.core.lsdb import LinkStateDB

    raw = LinkStateDB.from_topology(topo).frame()
    frame = rg691.OrgInfoFrame(raw, decode_strict(raw))
    return DumpResult(view=None, frame=frame, banner="691 Available")  # type: ignore[arg-type]


@pytest.mark.tcp
async def test_fuzzing_a_live_group_keeps_it_answering(tmp_path: Path) -> None:
    """Two real nodes on loopback; two batches of 691 and SMTP sequences, before and after authentication, at
    the master: it answers DUMP after each and its table changes only by valid updates."""
    ports, smtp = free_ports(2), free_ports(2)
    topo = load_topology(write_topology(tmp_path / "t.toml", ["A", "B"], ports, smtp=smtp))
    assert topo.secret == SECRET.encode()
    async with trio.open_nursery() as nursery:
        await nursery.start(NodeService(topo, "A").run)
        await nursery.start(NodeService(topo, "B").run)
        plan = live.Plan("127.0.0.1", ports[0], smtp[0], topo.secret, topo, batches=2, batch_size=6, seconds=60,
                         seed=3, findings=tmp_path / "findings")  # fmt: skip
        lines: list[str] = []
        report = await live.run(plan, lines.append)
        nursery.cancel_scope.cancel()
    assert report.failure == "" and report.batches == 2 and report.connections == 12
    assert report.bytes_sent > 0 and "answers DUMP" in lines[0]
