"""SCROLLS documents at each input length against `profiler serve`: latency, throughput, J/query.

    locust -f loadtests/scrolls.py --host http://127.0.0.1:8000 --tokenizer build/demo/led-small \
        --headless -u 4 -r 4 --stage-seconds 30 --input-lengths 1024,2048,3072,4096

One stage per input length (requests named ``generate@2048`` and so on), each inside the server's
energy window of the same name; raw latencies, the server's timings and per-request joules go to
the results file (``--results``). Flags and modes: docs/loadtests.md. The logic lives in
``profiler.loadgen``; this file only names the classes locust looks for.

It ships inside the package so that `profiler sweep` and an installed project (no checkout) find
it: :data:`profiler.loadgen.launch.LOCUSTFILE` is its path. In a checkout,
``loadtests/scrolls.py`` re-exports it.
"""

from __future__ import annotations

from locust import FastHttpUser, LoadTestShape, constant, events, task

from profiler.loadgen.plugin import install

loadgen = install(events)


class ScrollsUser(FastHttpUser):
    """Posts the current stage's documents: back to back, or on its Poisson schedule."""

    wait_time = constant(0)  # pacing is the sender's: closed loop or the open-loop schedule
    network_timeout = 600.0  # a 4096-token generate on a busy CPU can take minutes
    connection_timeout = 60.0

    def on_start(self) -> None:
        self.sender = loadgen.sender(self)

    def on_stop(self) -> None:
        self.sender.close()

    @task
    def query(self) -> None:
        self.sender.send_next()


class ScrollsStages(LoadTestShape):
    """One stage per --input-lengths entry (a warm-up, then until its rules are met), at -u users
    spawned at -r/s."""

    use_common_options = True

    def reset_time(self) -> None:
        super().reset_time()  # type: ignore[no-untyped-call]  # locust leaves it unannotated
        loadgen.restart()

    def tick(self) -> tuple[int, float] | None:
        return loadgen.tick()
