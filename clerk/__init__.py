"""The raftkv client: ``AsyncClerk`` (asyncio) and ``Clerk`` (blocking) over ``kvServerRpc``.

``clerk.core`` holds the pure decisions both share with the simulated clerks; ``clerk.members``
the server table by node index that follows the cluster's membership, and ``clerk.connections``
the channels and the learning of member lists; ``clerk.errors`` the typed errors (each a
``NotAppliedError`` or an ``OutcomeUnknownError``); ``kvapi.config`` reads the original's
``test.conf``.
"""

from clerk.aio import AsyncClerk
from clerk.blocking import Clerk
from clerk.connections import Connections, resolve_servers
from clerk.core import Attempt, ClerkCore, ClerkSession, RetryPolicy
from clerk.errors import (
    BadCommandError,
    BadRequestError,
    ClerkError,
    ConfChangeRefusedError,
    NotAppliedError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RpcRefusedError,
    ServerError,
    SessionExpiredError,
    StaleRequestError,
    UnexpectedReplyError,
)
from clerk.results import ConditionalResult, StaleRead, StaleScan
from kvapi.config import ConfigError, load_test_conf, parse_test_conf

__all__ = [
    "AsyncClerk",
    "Attempt",
    "BadCommandError",
    "BadRequestError",
    "Clerk",
    "ClerkCore",
    "ClerkError",
    "ClerkSession",
    "ConditionalResult",
    "ConfChangeRefusedError",
    "ConfigError",
    "Connections",
    "NotAppliedError",
    "OperationTimeoutError",
    "OutcomeUnknownError",
    "RetryPolicy",
    "RpcRefusedError",
    "ServerError",
    "SessionExpiredError",
    "StaleRead",
    "StaleRequestError",
    "StaleScan",
    "UnexpectedReplyError",
    "load_test_conf",
    "parse_test_conf",
    "resolve_servers",
]
