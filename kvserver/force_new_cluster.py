"""Quorum-loss recovery: make one surviving node the only member of its cluster, with its data.

etcd's ``--force-new-cluster``. When a majority of the voters is gone for good, no change can
commit any more, not even the one that would remove the dead. The operator restarts one
survivor with ``--force-new-cluster``: before its Raft core starts, the node appends to its own
log a CONF_FORCE entry whose configuration names it alone (its address, the cluster's
``next_id`` kept so ids are still never reused). Configurations take effect when appended, so
the node is then a one-voter cluster: it elects itself, commits its no-op and with it every entry
its log holds, the forced configuration included, and new members are added normally.

This is outside Raft's guarantees, as in etcd: entries that a lost majority committed but this
node never received are gone, and an entry this node holds that was never committed becomes
committed. Pick the survivor with the longest log, and delete the other old members' data
directories before they are added back as new members.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kvapi.config import format_address
from kvapi.nodes import node_name
from raftcore.membership import Membership, MembershipLog, forced_change
from raftcore.raftpb_pb2 import ENTRY_CONF_CHANGE, Entry
from raftcore.storage import Storage

__all__ = ["force_new_cluster"]

_log = logging.getLogger(__name__)


def force_new_cluster(
    storage: Storage,
    node_id: int,
    listen: tuple[str, int] | None,
    test_conf: Mapping[int, tuple[str, int]],
) -> Membership:
    """Append, durably, the configuration that makes ``node_id`` the only member (nothing
    if it is already); returns it.

    The node's address is ``listen``, else the one its configuration holds, else test.conf's;
    ValueError when none is known, or when the node is not a member of its own configuration
    (a removed node's data cannot found a cluster)."""
    hard_state, _ = storage.initial_state()
    current = MembershipLog.from_storage(storage, test_conf).latest
    last = storage.last_index()
    name = node_name(node_id)
    if not current.is_member(node_id):
        raise ValueError(f"{name} is not a member of the configuration its data holds")
    known = current.addresses.get(node_id)
    if listen is not None:
        address = format_address(listen)
    elif known:
        address = known
    elif node_id in test_conf:
        address = format_address(test_conf[node_id])
    else:
        raise ValueError(f"{name} does not know its address: pass --listen HOST:PORT")
    if current.voters == (node_id,) and not current.learners:
        _log.info("%s: already the only member: nothing to force", name)
        return current  # a restart that kept the flag
    change = forced_change(current, node_id, address)
    term = max(hard_state.term, storage.term(last))
    entry = Entry(
        term=term, index=last + 1, type=ENTRY_CONF_CHANGE, data=change.SerializeToString()
    )
    storage.save(None, [entry])
    dropped = [node_name(m) for m in current.members if m != node_id]
    _log.warning(
        "%s: forced a new cluster with itself as the only member at index %d (dropped %s)",
        name,
        entry.index,
        ", ".join(dropped) or "nobody",
    )
    return Membership.of(change.result)
