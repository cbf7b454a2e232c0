"""The sweep's progress: the time left from the matrix and the stage rules, refined by what was
measured, and the lines it draws from the load test's status and an export's steps."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from exporters.progress import ExportStep
from profiler.loadgen.live import LiveStage, LiveStatus
from profiler.loadgen.stopping import StageRules
from profiler.sweep.progress import (
    Eta,
    Measured,
    RunWork,
    SweepProgress,
    describe_eta,
    describe_stage,
    estimate,
)

RULES = StageRules(stage_seconds=4, min_requests=20, max_stage_seconds=40, warmup_seconds=1)


def test_before_anything_is_measured_each_stage_takes_its_warmup_and_least_time() -> None:
    runs = [RunWork(2), RunWork(2), RunWork(3)]  # 7 stages
    eta = estimate(runs, ["eager", "onnx"], RULES, Measured())
    assert eta.expected_s == eta.least_s == 7 * (1 + 4)
    assert eta.most_s == 7 * (1 + 40)  # every stage at its cap
    assert eta.untimed == 2  # neither preparation has been timed


def test_measured_stages_and_run_overheads_refine_the_estimate_within_the_rules() -> None:
    measured = Measured(stage_s=[9.0, 11.0], run_overhead_s=[6.0])
    eta = estimate([RunWork(2), RunWork(2)], [], RULES, measured)
    assert eta.expected_s == 2 * (2 * (1 + 10.0) + 6.0)
    assert eta.least_s == 2 * (2 * (1 + 4) + 6.0)
    assert eta.most_s == 2 * (2 * (1 + 40) + 6.0)
    slow = estimate([RunWork(1)], [], RULES, Measured(stage_s=[500.0]))
    assert slow.expected_s == 1 + 40  # no stage outlasts its cap
    fast = estimate([RunWork(1)], [], RULES, Measured(stage_s=[0.5]))
    assert fast.expected_s == 1 + 4  # nor ends before its least time


def test_the_stage_on_now_has_spent_its_time_and_sets_the_least_the_others_take() -> None:
    runs = [RunWork(2), RunWork(2)]  # the first under way: its first stage has run 10 s
    eta = estimate(runs, [], RULES, Measured(), on_now_s=10.0)
    assert eta.expected_s == 4 * (1 + 10.0) - (1 + 10.0)  # a stage lasts 10 s or more, as this one
    assert eta.least_s == 4 * (1 + 4) - (1 + 4)  # this one is past its least time
    assert eta.most_s == 4 * (1 + 40) - (1 + 10)
    done = estimate([RunWork(1)], [], RULES, Measured(), on_now_s=60.0)
    assert (done.expected_s, done.least_s, done.most_s) == (0.0, 0.0, 0.0)  # never below nothing


def test_a_capacity_search_counts_its_probes_at_most_until_one_has_run() -> None:
    search = RunWork(2, most_probes=8)
    assert search.search
    assert not RunWork(2).search
    unmeasured = estimate([search], [], RULES, Measured())
    assert unmeasured.expected_s == 2 * 8 * (1 + 4)  # every probe it may make, each at its least time
    assert unmeasured.most_s == 2 * 8 * (1 + 40)
    assert unmeasured.least_s == 2 * (1 + 4)  # one probe per length
    measured = estimate([search], [], RULES, Measured(probes_per_length=[3.0, 5.0]))
    assert measured.expected_s == 2 * 4.0 * (1 + 4)


def test_preparations_are_timed_per_format() -> None:
    measured = Measured()
    measured.prepare_s["onnx"] += [100.0, 140.0]
    eta = estimate([], ["onnx", "torchscript", "onnx"], RULES, measured)
    assert (eta.expected_s, eta.least_s, eta.most_s, eta.untimed) == (240.0, 200.0, 280.0, 1)
    assert describe_eta(eta) == (
        "~4:00 left (3:20 to 4:40 by the stage rules) + 1 exports/server starts not timed yet"
    )


def _stage(
    state: str, requests: int, elapsed: float, failures: int = 0, lacking: list[str] | None = None
) -> LiveStage:
    return LiveStage(
        name="generate@2048",
        length=2048,
        state=state,  # type: ignore[arg-type]
        elapsed_s=elapsed,
        requests=requests,
        failures=failures,
        lacking=lacking or [],
    )


def test_a_stage_line_names_its_units() -> None:
    assert describe_stage(_stage("running", 14, 9.2), RULES) == (
        "generate@2048: 14/20 requests, 9 s (min 4 s, cap 40 s)"
    )
    assert describe_stage(_stage("running", 16, 12.0, failures=2, lacking=["14 of 20 requests"]), RULES) == (
        "generate@2048: 14/20 requests, 12 s (min 4 s, cap 40 s), 2 failed; waits for 14 of 20 requests"
    )
    assert describe_stage(_stage("warm-up", 3, 0.6), RULES) == "generate@2048: 1 s of 1 s (left out)"


def _status(*stages: LiveStage) -> LiveStatus:
    return LiveStatus(
        phase="stage", current=None, stages=list(stages), results_path=None, results_written=False, error=None
    )


def test_the_step_line_follows_exports_and_stages_and_restarts_for_each() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    runs = [RunWork(2)]
    with SweepProgress(console, RULES, 2, runs, ["onnx"]) as shown:
        shown.preparing("tiny/onnx", "onnx", "its export (or one to reuse)")
        started = shown.prepare_started
        listener = shown.export_listener("tiny/onnx")
        listener(ExportStep("graph encoder", 0, 4))
        listener(ExportStep("parity at 1024 tokens, global 1", 3, 4))
        shown.progress.refresh()
        assert "tiny/onnx" in out.getvalue()
        assert "3/4 steps; now parity at 1024 tokens, global 1" in out.getvalue()
        shown.preparing("tiny/onnx", "onnx", "server start, idle baseline")
        assert shown.prepare_started == started  # one preparation, timed from its first step
        shown.progress.refresh()
        assert "server start, idle baseline" in out.getvalue()
        assert shown.prepares == []  # being prepared: counted down, no longer waiting
        shown.prepared()
        shown.locust_started("tiny/onnx closed 1 #1", runs[0])
        step = shown.progress.tasks[shown.step]
        assert step.completed == 0
        assert step.finished_time is None
        shown.status("tiny/onnx closed 1 #1", _status(_stage("running", 5, 2.0)))
        shown.progress.refresh()
        shown.status("tiny/onnx closed 1 #1", _status(_stage("running", 20, 4.0)))
        shown.progress.refresh()
        step = shown.progress.tasks[shown.step]  # enough requests: the bar runs to the cap, the clock on
        assert (step.completed, step.total, step.finished_time) == (4.0, 40.0, None)
        shown.run_finished(2, [4.5, 5.5])
        sweep = shown.progress.tasks[shown.sweep]
        assert (sweep.completed, sweep.total) == (2, 2)
    text = out.getvalue()
    assert text.index("5/20 requests, 2 s") < text.index("20/20 requests, 4 s")
    assert "2/2 cells, ~0 s left" in text
    assert shown.measured.stage_s == [4.5, 5.5]
    assert shown.measured.prepare_s["onnx"][0] >= 0


@pytest.mark.parametrize(("seconds", "text"), [(35.4, "35 s"), (250, "4:10"), (3903, "1:05:03")])
def test_times_read_as_clocks(seconds: float, text: str) -> None:
    assert describe_eta(Eta(seconds, seconds, seconds, 0)).startswith(f"~{text} left")


def test_the_time_left_counts_down_through_a_preparation_and_a_capacity_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("profiler.sweep.progress.time.monotonic", lambda: clock[0])
    search = RunWork(2, most_probes=3)
    shown = SweepProgress(Console(file=io.StringIO()), RULES, 2, [search], ["onnx"])

    def detail() -> str:
        return str(shown.progress.tasks[shown.sweep].fields["detail"])

    assert (
        detail()
        == "0/2 cells, ~30 s left (10 s to 4:06 by the stage rules) + 1 exports/server starts not timed yet"
    )
    shown.preparing("m/onnx", "onnx", "its export (or one to reuse)")
    clock[0] += 40.0
    shown.prepared()  # now timed: 40 s for onnx
    assert shown.measured.prepare_s["onnx"] == [40.0]
    shown.locust_started("m/onnx capacity #1", search)
    assert detail().startswith("0/2 cells, ~30 s left (10 s to 4:06")  # 2 lengths x 3 probes x 5 s
    clock[0] += 12.0
    shown.status("m/onnx capacity #1", _status(_stage("running", 3, 11.0)))
    assert detail().startswith("0/2 cells, ~18 s left (0 s to 3:54")  # a search counts down by the clock
