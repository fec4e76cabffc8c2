"""`linkstate orginfo decode|encode|digest` through click's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from linkstate.cli.main import cli
from proto.codec import decode_strict, decode_tolerant, encode

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "vectors" / "seed-sample-l8818.txt"
SAMPLE = SAMPLE_PATH.read_bytes()
D = decode_tolerant(SAMPLE)
F2 = encode(D.orginfo, digest=D.digest)


def run(args: list[str], stdin: bytes = b"") -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["orginfo", *args], input=stdin)
    return result.exit_code, result.stdout_bytes, result.stderr


def test_decode_tolerant_file() -> None:
    code, out, err = run(["decode", "--tolerant", str(SAMPLE_PATH)])
    assert code == 0, err
    obj = json.loads(out)
    assert obj["digest"] == "a9c421ebe14f06710f6ab596345ac615"
    assert obj["computed_digest"] == D.computed_digest
    assert obj["length"] == 0x457
    assert len(obj["warnings"]) == 11
    assert obj["routing_groups"][0]["connectors"][0]["reject"][0] == "CN=tester07,CN=Users,DC=domain,DC=com"


def test_decode_strict_stdin_and_round_trip_through_encode() -> None:
    code, out, _ = run(["decode"], F2)
    assert code == 0
    assert json.loads(out)["warnings"] == []
    code, raw, _ = run(["encode", "--keep-digest", "-"], out)
    assert code == 0 and raw == F2
    code, raw, _ = run(["encode"], out)
    assert code == 0 and raw == encode(D.orginfo)
    assert decode_strict(raw).digest == D.computed_digest


def test_digest() -> None:
    code, out, _ = run(["digest"], F2)
    assert code == 0 and out.decode().strip() == D.computed_digest
    code, out, _ = run(["digest", "--tolerant", str(SAMPLE_PATH)])
    assert code == 0 and out.decode().strip() == D.computed_digest


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["decode"], SAMPLE, "error: expected a separator (0x20), found b'.' at byte 10"),
        (["digest"], SAMPLE, "error: expected a separator (0x20), found b'.' at byte 10"),
        (["decode", "--tolerant"], b"garbage", "error: expected '{', found b'g' at byte 0"),
        (["decode"], F2.replace(b"{47}", b"{4b}"), f"at byte {F2.index(b'{47}')}"),
        (["encode"], b"{", "error: invalid JSON: "),
        (["encode"], b'{"routing_groups": [{"guid": 1}]}', "at $.routing_groups[0].guid"),
        (["encode"], b"[]", "error: expected an object, got a list at $"),
        (["decode", "/nonexistent/file"], b"", "error: cannot read /nonexistent/file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], stdin: bytes, message: str) -> None:
    code, out, err = run(args, stdin)
    assert code == 2
    assert out == b""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]


def test_real_process_never_prints_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from linkstate.cli.main import main; main()", "orginfo", "decode", str(SAMPLE_PATH)],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "error: expected a separator (0x20), found b'.' at byte 10; "
        "this is the printed/sanitized form: try --tolerant\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from linkstate.cli.main import main; main()", "orginfo", "encode", "--keep-digest"],
        input=json.dumps({"digest": D.digest, "routing_groups": json.loads(run(["decode"], F2)[1])["routing_groups"]})
        .encode(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == F2
