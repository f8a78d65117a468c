"""A deterministic simulated KV cluster: Replicas on raftcore's simulated network, simulated clerks.

It is built on :mod:`raftcore.testing` (its scheduler, network, invariant checker, driver
processes and the node and cluster runtime of :mod:`raftcore.testing.runtime`). Like that package
it ships with the package, does no I/O, reads no clock and draws all
randomness from ``random.Random`` instances seeded from one run seed, so a seed replays a run.

* :mod:`kvserver.testing.wire`: the simulated clients' request/reply bytes;
* :mod:`kvserver.testing.node`: one server (RawNode + MemoryStorage + Replica);
* :mod:`kvserver.testing.clerk`: a client driving ``clerk.core`` and recording a lincheck history;
* :mod:`kvserver.testing.cluster`: servers, clients, partitions, crash/restart, size probes;
* :mod:`kvserver.testing.workload`: 6.5840's kvraft client load, partitioner and checks.
"""
