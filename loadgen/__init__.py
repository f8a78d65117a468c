"""``raftkv bench``'s load generator: closed-loop clients in worker processes, live progress,
mergeable latency histograms, and the report (see :mod:`loadgen.runner` for how a run goes).

- :mod:`loadgen.workload`: the operation mix, keys and values, and their validation;
- :mod:`loadgen.histogram`: the log-bucketed latency histogram (under 1% relative error);
- :mod:`loadgen.stats`: per-operation latencies and errors, as workers ship them;
- :mod:`loadgen.worker`: one worker process (``python -m loadgen.worker``);
- :mod:`loadgen.spawn`: the local cluster of ``--spawn N``;
- :mod:`loadgen.runner` and :mod:`loadgen.report`: the parent and what it prints.
"""
