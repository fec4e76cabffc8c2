"""Smoke run of the convergence benchmark (linkstate.bench.convergence): a tiny organization on the pure sim and on
in-memory services (MockClock).

Asserts the result structure and that convergence happened — never a timing. The long runs (1,000 servers,
loopback TCP) are the benchmark's own, from bench/README.md; the TCP one here is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from linkstate.bench.convergence import cli


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return cli


def _run(bench: ModuleType, tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    assert bench.main(["run", "--quiet", "--out", str(tmp_path), *args]) == 0
    (result,) = tmp_path.glob("convergence-*.json")
    (table,) = tmp_path.glob("convergence-*.csv")
    assert table.read_text().startswith("# convergence = ")
    return json.loads(result.read_text())  # type: ignore[no-any-return]


def _check(doc: dict, event: str, transport: str, depth: int = 2) -> None:  # type: ignore[type-arg]
    assert doc["definition"].startswith("convergence = ")
    assert doc["machine"]["python"] and "trio" in doc["machine"]["versions"]
    (scn,) = doc["scenarios"]
    assert (scn["event"], scn["transport"]) == (event, transport)
    assert scn["summary"]["runs"] == scn["summary"]["converged"] == 2
    for run in scn["runs"]:
        assert run["convergence"] is not None and run["convergence"] >= 0
        assert set(run["arrivals"]) == {f"G{g:03d}-S{s}" for g in range(4) for s in (1, 2)}
        assert run["bytes_smtp"] > 0 and run["packet_bytes"] > 0
        assert run["depth"] == depth and run["t_hop"] is not None and run["ratio"] is not None


@pytest.mark.parametrize("transport", ["sim", "memory"])
def test_a_minor_update_converges_on_a_ring(bench: ModuleType, tmp_path: Path, transport: str) -> None:
    doc = _run(bench, tmp_path, "--shape", "ring", "--groups", "4", "--servers", "2", "--event", "minor",
               "--transport", transport, "--runs", "2")  # fmt: skip
    _check(doc, "minor", transport)


def test_a_major_update_converges_and_compare_reads_the_files(bench: ModuleType, tmp_path: Path) -> None:
    doc = _run(bench, tmp_path, "--shape", "ring", "--groups", "4", "--servers", "2", "--event", "major", "--runs", "2")
    _check(doc, "major", "sim", depth=1)  # the added connector reaches the far group directly
    (result,) = tmp_path.glob("convergence-*.json")
    text = bench.compare(result, result)
    assert "ring-4x2-major-sim" in text and "1.00" in text


def test_oscillation_counts_updates_and_its_compat_e2k_baseline(bench: ModuleType, tmp_path: Path) -> None:
    assert bench.main(["run", "--quiet", "--out", str(tmp_path), "--shape", "ring", "--groups", "3",
                       "--servers", "1", "--event", "oscillation"]) == 0  # fmt: skip
    (result,) = tmp_path.glob("convergence-*.json")
    damped, e2k = json.loads(result.read_text())["scenarios"]
    assert not damped["settings"].get("compat_e2k") and e2k["settings"]["compat_e2k"]
    for scn in (damped, e2k):
        extra = scn["runs"][0]["extra"]
        assert extra["flaps"] == 10 and extra["windows"] == 1 and extra["converged"]
    assert damped["runs"][0]["extra"]["minor_per_window"] <= 1
    assert e2k["runs"][0]["extra"]["state_commits"] == 20


def test_a_shape_without_alternate_paths_reports_not_applicable(bench: ModuleType, tmp_path: Path) -> None:
    doc = _run(bench, tmp_path, "--shape", "line", "--groups", "3", "--servers", "1", "--event", "minor", "--runs", "1")
    (scn,) = doc["scenarios"]
    assert scn["note"].startswith("not applicable") and scn["runs"] == []


def test_plots_are_written_or_skipped_with_a_reason(bench: ModuleType, tmp_path: Path) -> None:
    doc = _run(bench, tmp_path, "--shape", "ring", "--sizes", "3x1,4x2", "--event", "minor", "--runs", "2", "--plots")
    assert len(doc["scenarios"]) == 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # CI installs only the dev extra: the run still succeeds and says why there are no plots
        assert str(bench.plots([], tmp_path, "x")).startswith("plots skipped: matplotlib not installed")
        assert not list(tmp_path.glob("*.png"))
    else:
        assert len(list(tmp_path.glob("*-size.png"))) == 1 and len(list(tmp_path.glob("*-timeline.png"))) == 1


@pytest.mark.slow
@pytest.mark.tcp
def test_a_minor_update_converges_over_loopback_tcp(bench: ModuleType, tmp_path: Path) -> None:
    doc = _run(bench, tmp_path, "--shape", "ring", "--groups", "4", "--servers", "2", "--event", "minor",
               "--transport", "tcp", "--runs", "2")  # fmt: skip
    _check(doc, "minor", "tcp")


def test_both_exchanges_side_by_side(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--exchange full,delta`: each mode in its own process, both rows and their ratio, one file with both."""
    doc = _run(bench, tmp_path, "--shape", "ring", "--groups", "4", "--servers", "2", "--event", "minor",
               "--runs", "1", "--exchange", "full,delta")  # fmt: skip
    keys = [s["key"] for s in doc["scenarios"]]
    assert keys == ["ring-4x2-minor-full-sim", "ring-4x2-minor-delta-sim"]
    full, delta = (s["summary"] for s in doc["scenarios"])
    assert full["converged"] == delta["converged"] == 1
    assert delta["bytes"] < full["bytes"] and full["peak_rss_mb"] > 0 and delta["peak_rss_per_server_kb"] > 0
    out = capsys.readouterr().out
    assert "delta/full" in out and "peak RSS per server" in out and "convergence p50" in out


def test_a_scenario_that_cannot_be_measured_is_a_row_not_the_end_of_the_sweep(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep at 10,000 servers ended in a traceback after an hour (the organization's table was over
    max_table_bytes, so it never converged), and the sizes measured before it were lost with it."""
    real = bench.run_sim

    def failing_at_3(sc, *args, **kwargs):  # type: ignore[no-untyped-def]
        if sc.groups == 3:
            raise bench.ScenarioFailed("the organization did not converge within 7200 s of virtual time at start")
        return real(sc, *args, **kwargs)

    monkeypatch.setattr(bench, "run_sim", failing_at_3)
    doc = _run(bench, tmp_path, "--shape", "ring", "--sizes", "4x1,3x1", "--event", "minor", "--runs", "1")
    measured, failed = doc["scenarios"]
    assert measured["summary"]["converged"] == 1 and not measured["note"].startswith("not measured")
    assert failed["note"].startswith("not measured: the organization did not converge") and failed["runs"] == []


def test_a_setting_out_of_range_is_one_line_and_exit_2(bench: ModuleType, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert bench.main(["run", "--quiet", "--out", str(tmp_path), "--groups", "3", "--servers", "1",
                       "--set", "max_table_bytes=99"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "max_table_bytes: must be between" in err and err.count("\n") == 1
