"""Load generation for `locust -f loadtests/scrolls.py`: stages per input length, open and closed
loop, raw samples gathered from every worker, energy windows per stage, the results file.

Modules (none but :mod:`~profiler.loadgen.plugin` imports locust, so the rest is testable alone):

- :mod:`~profiler.loadgen.config`: the flags, parsed and validated.
- :mod:`~profiler.loadgen.payloads`: request bodies of exact token lengths.
- :mod:`~profiler.loadgen.schedule`: Poisson schedules and latency from the scheduled time.
- :mod:`~profiler.loadgen.samples`: per-request samples and their gathering per stage.
- :mod:`~profiler.loadgen.agent`: the load-generating process's side (stage state, shipping samples).
- :mod:`~profiler.loadgen.coordinator`: the master's side (stages, energy windows, results).
- :mod:`~profiler.loadgen.results` and :mod:`~profiler.loadgen.table`: the results file and table.
- :mod:`~profiler.loadgen.plugin`: the locust glue the locustfile installs.

See docs/loadtests.md.
"""
