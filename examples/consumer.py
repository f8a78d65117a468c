"""The original's RPC demo, client side: calls FiendServiceRpc.GetFriendsList ``--count`` times.

    python -m examples.consumer [--host 127.0.0.1] [--port 7788] [--count 10]

Prints the result code and friends of each call. When no provider answers it prints one error
line and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from examples import friend_pb2
from examples.friend_stub import FriendRpc
from rpc import RpcChannel, RpcConnectionError, RpcError, RpcTimeoutError
from rpc.loop import run


async def consume(host: str, port: int, count: int, userid: int, timeout: float) -> int:
    """Make ``count`` calls and print each answer; return the process exit status."""
    async with RpcChannel(host, port, connect_timeout=timeout) as channel:
        stub = FriendRpc(channel)
        request = friend_pb2.GetFriendsListRequest(userid=userid)
        for i in range(1, count + 1):
            try:
                response = await stub.GetFriendsList(request, timeout=timeout)
            except (RpcConnectionError, RpcTimeoutError) as exc:
                print(f"error: no provider answers: {exc}", file=sys.stderr)
                return 1
            except RpcError as exc:
                print(f"error: GetFriendsList failed: {exc}", file=sys.stderr)
                return 1
            result = response.result
            friends = ", ".join(f.decode(errors="replace") for f in response.friends)
            errmsg = result.errmsg.decode(errors="replace")
            print(f"call {i}: errcode={result.errcode} errmsg={errmsg!r} friends: {friends}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the calls; return the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m examples.consumer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="provider address")
    parser.add_argument("--port", type=int, default=7788, help="provider port")
    parser.add_argument("--count", type=int, default=10, help="number of calls")
    parser.add_argument("--userid", type=int, default=1000, help="user whose friends to list")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return run(consume(args.host, args.port, args.count, args.userid, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
