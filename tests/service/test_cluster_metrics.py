"""As a new user would: `cluster up` on the single-group example prints each server's metrics URL; a real HTTP
client scrapes them and prometheus_client's parser reads the families (the master reports two attached members);
/health says 200 while the group serves and 503 with the reason once the master is gone; `cluster status --json`
has the URLs; and the clean start logged no warning (docs/EVENTS.md).

The example's smart host (192.0.2.25, a documentation address) is replaced by one the test serves on loopback:
the real one is unreachable, so its connector goes DOWN with a warning once the start-up window (5 s at this
time scale) is over — a race with this test's reading of the logs on a loaded machine — and no test sends a
packet off loopback."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.node_cli_helpers import reaped, run_cli, spawn_cli, wait_until
from tests.service.test_metrics import FAMILIES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
URL_LINE = re.compile(r"^  (\S+) +pid \d+ +listens on \S+  metrics (http://\S+/metrics)  log (\S+)$", re.M)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, text = fetch(url)
    assert status == 200, text
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def gauge(families: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    [(_, value)] = families[name]
    return value


@contextlib.contextmanager
def smart_host() -> Iterator[int]:
    """An SMTP smart host on loopback that greets every connection with 220 (what a probe needs); its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                with conn, contextlib.suppress(OSError):
                    conn.sendall(b"220 smart host ready\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def connector_up(url: str) -> bool:
    status, text = fetch(url)
    return status == 200 and 'connector="Internet",routing_group="First Routing Group",state="UP"} 1.0' in text


@pytest.mark.tcp
def test_cluster_up_serves_metrics_and_health(tmp_path: Path) -> None:
    with smart_host() as port:
        _cluster_up_serves_metrics_and_health(tmp_path, port)


def _cluster_up_serves_metrics_and_health(tmp_path: Path, smart_host_port: int) -> None:
    shutil.copy(EXAMPLES / "single-group.secret", tmp_path / "single-group.secret")
    example = (EXAMPLES / "single-group.toml").read_text()
    assert 'smart_host = "[192.0.2.25]"' in example
    path = tmp_path / "single-group.toml"
    path.write_text(example.replace("[192.0.2.25]", f"127.0.0.1:{smart_host_port}"))
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    out = tmp_path / "up.out"
    with open(out, "w") as fh, reaped(spawn_cli("cluster", "up", str(path), "--time-scale", "60", "--no-status",
                                                env=env, stdout=fh)) as up:  # fmt: skip
        try:
            assert wait_until(lambda: len(URL_LINE.findall(out.read_text())) == 3, 30), out.read_text()
            urls = {name: url for name, url, _ in URL_LINE.findall(out.read_text())}
            logs = [Path(log) for _, _, log in URL_LINE.findall(out.read_text())]
            master = urls["EX1"]

            def two_attached() -> bool:
                status, text = fetch(master)
                return status == 200 and "\nlinkstate_attached_members 2.0\n" in text

            assert wait_until(two_attached, 20), fetch(master)
            families = scrape(master)
            assert set(families) >= FAMILIES
            assert gauge(families, "linkstate_quorum") == 1 and gauge(families, "linkstate_group_servers") == 3
            [(info, _)] = families["linkstate_node_info"]
            assert info["role"] == "master" and info["server"] == "EX1"
            member = scrape(urls["EX2"])
            assert gauge(member, "linkstate_attached") == 1
            assert families["linkstate_table_digest_info"] == member["linkstate_table_digest_info"]
            assert all(fetch(u.replace("/metrics", "/health"))[0] == 200 for u in urls.values())

            res = run_cli("cluster", "status", str(path), "--json", env=env)
            assert {s["name"]: s["metrics"] for s in json.loads(res.stdout)["servers"]} == urls

            # a clean start: no warning, no error (docs/EVENTS.md: peers not listening yet at start-up is info),
            # read once both bridgeheads reached the smart host (the connector is UP), whenever that is
            assert wait_until(lambda: connector_up(master), 20), fetch(master)
            lines = [json.loads(ln) for log in logs for ln in log.read_text().splitlines() if ln.startswith("{")]
            assert lines and not [e for e in lines if e["level"] in ("warning", "error")]
            assert all(isinstance(e["event_id"], int) for e in lines)  # every line is an event of the catalog
            assert not [e for e in lines if e["event"] in ("authenticated", "client_authenticated")]  # debug

            res = run_cli("cluster", "stop", str(path), "EX1", env=env)
            assert res.returncode == 0, res.stderr
            health = urls["EX2"].replace("/metrics", "/health")
            assert wait_until(lambda: fetch(health)[0] == 503, 10)
            unavailable = "unavailable: member of First Routing Group: not attached to its master EX1\n"
            assert fetch(health) == (503, unavailable)
        finally:
            run_cli("cluster", "stop", str(path), env=env)
            up.wait(timeout=20)
