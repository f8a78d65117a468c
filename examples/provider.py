"""The original's RPC demo, server side: serves fixbug.FiendServiceRpc until Ctrl-C.

    python -m examples.provider [--host 127.0.0.1] [--port 7788]

Port 0 picks a free port; the line printed at start says which.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from examples import friend_pb2
from examples.friend_stub import FriendRpc
from rpc import RpcController, RpcProvider
from rpc.loop import run


class FriendService:
    """FiendServiceRpc's handlers: every user has the same three friends, as in the original."""

    async def GetFriendsList(
        self, request: friend_pb2.GetFriendsListRequest, controller: RpcController
    ) -> friend_pb2.GetFriendsListResponse:
        """Answer ``request.userid``'s friend list with result code 0."""
        return friend_pb2.GetFriendsListResponse(
            result=friend_pb2.ResultCode(errcode=0, errmsg=b""),
            friends=[b"gao yang", b"liu hong", b"wang shuo"],
        )


async def serve(host: str, port: int) -> None:
    """Serve FiendServiceRpc on (host, port) until SIGINT or SIGTERM, then close gracefully."""
    provider = RpcProvider()
    FriendRpc.serve(provider, FriendService())
    bound_host, bound_port = await provider.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"FiendServiceRpc provider listening on {bound_host}:{bound_port}", flush=True)
    await stop.wait()
    await provider.close()
    print("provider stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; return the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m examples.provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7788, help="port to listen on (0: any)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run(serve(args.host, args.port))
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
