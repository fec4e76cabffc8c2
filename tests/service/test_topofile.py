"""Files an operator names are read with a bound (linkstate.service.topofile, linkstate.cli.common.read_input):
`secret_file = "/dev/zero"`, a topology or an OrgInfo input that never ends, each is one `error:` line and exit
2, never a process that fills its memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linkstate.core.topology import TopologyError
from linkstate.service.topofile import MAX_SECRET_BYTES, load_topology

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ROOT / "examples" / "single-group.toml"


def with_secret_file(tmp_path: Path, secret_file: str) -> Path:
    text = SINGLE.read_text().replace('secret_file = "single-group.secret"', f'secret_file = "{secret_file}"')
    assert secret_file in text
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_a_secret_file_over_its_bound_is_one_problem_naming_the_bound(tmp_path: Path) -> None:
    with open(tmp_path / "big.secret", "wb") as fh:  # sparse: no disk, no memory
        fh.truncate(MAX_SECRET_BYTES + 1)
    with pytest.raises(TopologyError) as info:
        load_topology(with_secret_file(tmp_path, "big.secret"))
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("organization.secret_file", "cannot read big.secret: larger than 65,536 bytes (a secret is one line)")
    ]
    (tmp_path / "ok.secret").write_bytes(b"x" * (MAX_SECRET_BYTES - 1) + b"\n")  # the bound itself is fine
    assert load_topology(with_secret_file(tmp_path, "ok.secret")).secret == b"x" * (MAX_SECRET_BYTES - 1)


# Each command in the same child process, under a 1 GiB address-space limit: reading /dev/zero unbounded ends in
# MemoryError there (and would take the machine's memory without the limit).
_CHILD = """
import contextlib, io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from linkstate.cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    sys.argv = ["linkstate", *argv]
    sys.stdin = io.TextIOWrapper(open("/dev/zero", "rb"))
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            results.append([exc.code, out.getvalue()])
print(json.dumps(results))
"""


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_as_any_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    zero = str(with_secret_file(tmp_path, "/dev/zero"))
    commands = [
        ["topology", "check", zero],
        ["serve", "--topology", zero, "--server", "EX1", "--metrics", "off"],
        ["topology", "check", "/dev/zero"],
        ["winroute", "127.0.0.1:1", "--secret-file", "/dev/zero"],
        ["orginfo", "decode", "/dev/zero"],
        ["orginfo", "digest", "-"],
    ]
    res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(commands)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    secret = "organization.secret_file: cannot read /dev/zero: larger than 65,536 bytes (a secret is one line)"
    expected = [
        f"{zero}:7: {secret}\n",
        f"error: invalid topology: {zero}:7: {secret}\n",
        "error: cannot read /dev/zero: larger than 16 MiB (a topology file is TOML text)\n",
        "error: cannot read /dev/zero: larger than 65,536 bytes (a secret is one line)\n",
        "error: cannot read /dev/zero: larger than 64 MiB (an OrgInfo frame is at most 16 MiB)\n",
        "error: cannot read standard input: larger than 64 MiB (an OrgInfo frame is at most 16 MiB)\n",
    ]
    assert results == [[2, line] for line in expected]


def _many_groups(tmp_path: Path, groups: int, max_table_bytes: int) -> Path:
    lines = ['[organization]', 'name = "Big"', 'secret = "s3cret"', "", "[settings]",
             f"max_table_bytes = {max_table_bytes}", f"max_output_bytes = {2 * max_table_bytes}",
             f"max_unknown_bytes = {max_table_bytes // 4}", ""]  # fmt: skip
    for i in range(groups):
        lines += ["[[routing_groups]]", f'name = "G{i}"', f'master = "s{i}"', ""]
        lines += ["[[servers]]", f'name = "s{i}"', f'routing_group = "G{i}"', ""]
    path = tmp_path / "big.toml"
    path.write_text("\n".join(lines))
    return path


def test_a_directory_whose_table_would_not_fit_max_table_bytes_is_refused(tmp_path: Path) -> None:
    """Every node merges under max_table_bytes (docs/SECURITY.md): a directory whose own table is near the bound
    (2,500 groups of four servers at the default 4 MiB) could never converge — a sweep ran an hour to find out.
    `topology check` and `serve` say so at once, in one line; raising the bound makes the same directory valid."""
    small = _many_groups(tmp_path, 400, 64 * 1024)
    with pytest.raises(TopologyError) as info:
        load_topology(small)
    (problem,) = info.value.problems
    assert problem.path == "settings.max_table_bytes" and "over 90 % of max_table_bytes (65536)" in problem.message
    res = subprocess.run([sys.executable, "-m", "linkstate", "topology", "check", str(small)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2 and res.stdout.count("\n") == 1 and "max_table_bytes" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    ok = _many_groups(tmp_path, 400, 1024 * 1024)
    assert len(load_topology(ok).routing_groups) == 400
