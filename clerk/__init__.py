"""The raftkv client: ``AsyncClerk`` (asyncio) and ``Clerk`` (blocking) over ``kvServerRpc``.

``clerk.core`` holds the pure decisions both share with the simulated clerks; ``kvapi.config``
reads the original's ``test.conf``.
"""

from clerk.aio import AsyncClerk, Connections, resolve_servers
from clerk.blocking import Clerk
from clerk.core import Attempt, ClerkCore, ClerkSession, RetryPolicy
from clerk.errors import ClerkError, OperationTimeoutError, ServerError, SessionExpiredError
from clerk.results import ConditionalResult, StaleRead, StaleScan
from kvapi.config import ConfigError, load_test_conf, parse_test_conf

__all__ = [
    "AsyncClerk",
    "Attempt",
    "Clerk",
    "ClerkCore",
    "ClerkError",
    "ClerkSession",
    "ConditionalResult",
    "ConfigError",
    "Connections",
    "OperationTimeoutError",
    "RetryPolicy",
    "ServerError",
    "SessionExpiredError",
    "StaleRead",
    "StaleScan",
    "load_test_conf",
    "parse_test_conf",
    "resolve_servers",
]
