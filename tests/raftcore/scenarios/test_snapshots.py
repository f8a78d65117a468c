"""6.5840 Raft 3D (log compaction and InstallSnapshot) on the simulated cluster.

Every node's application snapshots its whole applied log every ``SNAPSHOT_INTERVAL`` entries
through ``storage.snapshot_writer`` and the log before it is compacted away; a follower that falls
behind the leader's snapshot catches up through chunked MSG_SNAPSHOT. The course bounds the
persisted Raft state (hard state and log, not the snapshot) by ``MAX_LOG_SIZE`` bytes.
"""

from __future__ import annotations

from raftcore.raftpb_pb2 import MessageType
from raftcore.testing.cluster import ClusterOptions, SimCluster

SNAPSHOT_INTERVAL = 10
MAX_LOG_SIZE = 2000
OPTIONS = ClusterOptions(snapshot_every=SNAPSHOT_INTERVAL)


def rand_cmd(cfg: SimCluster) -> bytes:
    """A random command, as the course proposes ``rand.Int()``."""
    return b"%d" % cfg.rng.randrange(1 << 62)


def snapcommon(sim_seed: int, *, disconnect: bool, reliable: bool, crash: bool) -> None:
    """6.5840's snapcommon: 30 rounds of 5-14 proposals, a victim (a follower, or every third
    round the leader) cut off or crashed meanwhile; it must catch up, by InstallSnapshot when
    the log it needs was compacted; the persisted Raft state stays under MAX_LOG_SIZE."""
    servers = 3
    cfg = SimCluster(servers, sim_seed, OPTIONS, reliable=reliable)
    cfg.one(rand_cmd(cfg), servers, True)
    leader1 = cfg.check_one_leader()
    for i in range(30):
        victim = leader1 % servers + 1
        sender = leader1
        if i % 3 == 1:
            sender = leader1 % servers + 1
            victim = leader1
        if disconnect:
            cfg.disconnect(victim)
            cfg.one(rand_cmd(cfg), servers - 1, True)
        if crash:
            cfg.crash(victim)
            cfg.one(rand_cmd(cfg), servers - 1, True)
        for _ in range(SNAPSHOT_INTERVAL // 2 + cfg.rng.randrange(SNAPSHOT_INTERVAL)):
            cfg.start(sender, rand_cmd(cfg))
        if not disconnect and not crash:
            # Everyone caught up, so no InstallSnapshot is needed in the basic test.
            cfg.one(rand_cmd(cfg), servers, True)
        else:
            cfg.one(rand_cmd(cfg), servers - 1, True)
        size = cfg.log_size()
        assert size < MAX_LOG_SIZE, f"log size too large: {size} bytes"
        if disconnect:
            # The follower may be behind and need a snapshot to catch up.
            cfg.connect(victim)
            cfg.one(rand_cmd(cfg), servers, True)
            leader1 = cfg.check_one_leader()
        if crash:
            cfg.restart(victim)
            cfg.connect(victim)
            cfg.one(rand_cmd(cfg), servers, True)
            leader1 = cfg.check_one_leader()
    if disconnect or crash:
        sent = cfg.messages_sent.get(MessageType.MSG_SNAPSHOT, 0)
        assert sent > 0, "the victims never needed InstallSnapshot: the test lost its point"


def test_snapshot_basic(sim_seed: int) -> None:
    """6.5840 TestSnapshotBasic3D: snapshots every 10 entries with no faults; the persisted Raft
    state stays under 2000 bytes."""
    snapcommon(sim_seed, disconnect=False, reliable=True, crash=False)


def test_snapshot_install(sim_seed: int) -> None:
    """6.5840 TestSnapshotInstall3D: a cut-off victim catches up by InstallSnapshot."""
    snapcommon(sim_seed, disconnect=True, reliable=True, crash=False)


def test_snapshot_install_unreliable(sim_seed: int) -> None:
    """6.5840 TestSnapshotInstallUnreliable3D: the same on an unreliable network."""
    snapcommon(sim_seed, disconnect=True, reliable=False, crash=False)


def test_snapshot_install_crash(sim_seed: int) -> None:
    """6.5840 TestSnapshotInstallCrash3D: the victim is crashed and restarted instead."""
    snapcommon(sim_seed, disconnect=False, reliable=True, crash=True)


def test_snapshot_install_uncrash(sim_seed: int) -> None:
    """6.5840 TestSnapshotInstallUnCrash3D: crashes on an unreliable network."""
    snapcommon(sim_seed, disconnect=False, reliable=False, crash=True)


def test_snapshot_all_crash(sim_seed: int) -> None:
    """6.5840 TestSnapshotAllCrash3D: 5 rounds of enough commands for a snapshot, then crash and
    restart every server; the next command's index is above the last one's."""
    servers = 3
    cfg = SimCluster(servers, sim_seed, OPTIONS)
    cfg.one(rand_cmd(cfg), servers, True)
    for _ in range(5):
        for _ in range(SNAPSHOT_INTERVAL // 2 + cfg.rng.randrange(SNAPSHOT_INTERVAL)):
            cfg.one(rand_cmd(cfg), servers, True)
        index1 = cfg.one(rand_cmd(cfg), servers, True)
        for i in cfg.ids:
            cfg.crash(i)
        for i in cfg.ids:
            cfg.restart(i)
            cfg.connect(i)
        index2 = cfg.one(rand_cmd(cfg), servers, True)
        assert index2 >= index1 + 1, f"index decreased from {index1} to {index2}"


def test_snapshot_init(sim_seed: int) -> None:
    """6.5840 TestSnapshotInit3D: crash all after a snapshot, restart, one op (so state is saved
    again), crash all again, restart: the snapshot read at start survives that save."""
    servers = 3
    cfg = SimCluster(servers, sim_seed, OPTIONS)
    cfg.one(rand_cmd(cfg), servers, True)
    for _ in range(SNAPSHOT_INTERVAL + 1):
        cfg.one(rand_cmd(cfg), servers, True)
    snapshot_index = min(cfg.node(i).storage.snapshot_metadata().index for i in cfg.ids)
    assert snapshot_index >= SNAPSHOT_INTERVAL, "no snapshot was taken"
    for _ in range(2):
        for i in cfg.ids:
            cfg.crash(i)
        for i in cfg.ids:
            cfg.restart(i)
            cfg.connect(i)
        cfg.one(rand_cmd(cfg), servers, True)
    for i in cfg.ids:
        kept = cfg.node(i).storage.snapshot_metadata().index
        assert kept >= snapshot_index, f"server {i} lost its snapshot: {kept} < {snapshot_index}"
