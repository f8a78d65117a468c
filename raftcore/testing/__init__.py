"""A deterministic simulated Raft cluster: virtual time, a lying network, invariant checks.

Shipped with the package (not hidden in a test file) so the scenario suite, the fault campaign and
the next layer's KV tests all run on it. Nothing here does I/O or reads a clock; all randomness
comes from ``random.Random`` instances seeded from one run seed, so a seed replays a run exactly.

* :mod:`raftcore.testing.scheduler`: the discrete-event scheduler (virtual microseconds);
* :mod:`raftcore.testing.network`: labrpc's fault model for one-way messages and calls;
* :mod:`raftcore.testing.invariants`: Raft's safety properties, checked after every step;
* :mod:`raftcore.testing.process`: driver processes that wait for delays or events;
* :mod:`raftcore.testing.runtime`: what every simulated cluster shares (events, seeding, faults,
  each node's monotonic clock with its rate, loop stalls);
* :mod:`raftcore.testing.app`: the recording application (its state is its applied log, its
  membership changes recorded apart);
* :mod:`raftcore.testing.cluster`: nodes, crash/restart, membership changes and 6.5840's test
  helpers;
* :mod:`raftcore.testing.reconfigure`: the campaign's membership fault (add, promote, remove,
  replace);
* :mod:`raftcore.testing.campaign`: the seeded mixed-fault campaign.

The network's request/reply path (:meth:`raftcore.testing.network.Port.call`, with
``SimNetwork.attach(address, on_call=...)``) is the seam for running KV servers and clerks on the
same simulated network: it always ends, with the reply or ``None`` on loss, crash or timeout.
"""
