"""Typed service stubs: one typed method per RPC method, checked against the service descriptor.

A service's stub is a :class:`TypedStub` subclass naming its ``SERVICE`` descriptor and one
:class:`Rpc` per method, each with the method's request and reply message classes::

    class KvServerRpc(TypedStub["KvServerRpcHandlers"]):
        SERVICE = kvserver_rpc_pb2.DESCRIPTOR.services_by_name["kvServerRpc"]
        Get = Rpc(GetArgs, GetReply)

    reply = await KvServerRpc(channel).Get(GetArgs(Key=b"x"), timeout=0.5)  # a GetReply

Defining the class checks it against the descriptor (every method present, with exactly its
message types), so a stub cannot drift from its ``.proto``; mypy then checks every call's request
and reply types. ``KvServerRpc.Get`` (on the class) is the unbound :class:`Rpc`, for code that
picks the method at run time and the channel per call (``await KvServerRpc.Get.call(channel,
args)``). The type argument names the service's handler type (a Protocol or TypedDict of its
handlers), which :meth:`TypedStub.serve` holds a server's handlers to. On the wire a
stub's call is exactly :meth:`RpcChannel.call` with the method's service and method names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, overload

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from rpc.channel import RpcChannel
from rpc.controller import RpcController
from rpc.provider import RpcProvider

__all__ = ["BoundRpc", "HandlerResult", "Rpc", "TypedStub"]

Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)
H = TypeVar("H")

HandlerResult: TypeAlias = Rep | Awaitable[Rep]
"""What a handler of a method replying ``Rep`` returns: the reply, or an awaitable of it."""


class Rpc(Generic[Req, Rep]):
    """One method of a typed stub: takes a ``Req``, answers a ``Rep``."""

    __slots__ = ("method", "reply_type", "request_type", "service")

    def __init__(self, request_type: type[Req], reply_type: type[Rep]) -> None:
        self.request_type = request_type
        self.reply_type = reply_type
        self.service = ""  # set when the stub class is defined
        self.method = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.method = name

    @overload
    def __get__(self, stub: None, owner: type) -> Rpc[Req, Rep]: ...

    @overload
    def __get__(self, stub: TypedStub[Any], owner: type) -> BoundRpc[Req, Rep]: ...

    def __get__(
        self, stub: TypedStub[Any] | None, owner: type
    ) -> Rpc[Req, Rep] | BoundRpc[Req, Rep]:
        if stub is None:
            return self
        bound = BoundRpc(self, stub.channel)
        # Cached on the instance: later lookups find it in __dict__ and skip this descriptor.
        stub.__dict__[self.method] = bound
        return bound

    def call(
        self,
        channel: RpcChannel,
        request: Req,
        *,
        timeout: float | None = None,
        controller: RpcController | None = None,
    ) -> Coroutine[Any, Any, Rep]:
        """Call this method over ``channel``; errors are those of :meth:`RpcChannel.call`.

        A request of another message class raises TypeError (mypy already refuses it; this
        catches untyped callers before the bytes go out as the wrong message).
        """
        if type(request) is not self.request_type:
            raise TypeError(
                f"{self.service}.{self.method} takes "
                f"{self.request_type.DESCRIPTOR.full_name}, not {type(request).__name__}"
            )
        return channel.call(
            self.service,
            self.method,
            request,
            self.reply_type,
            timeout=timeout,
            controller=controller,
        )


class BoundRpc(Generic[Req, Rep]):
    """An :class:`Rpc` bound to one stub's channel: ``await stub.Method(request, timeout=...)``."""

    __slots__ = ("_channel", "rpc")

    def __init__(self, rpc: Rpc[Req, Rep], channel: RpcChannel) -> None:
        self.rpc = rpc
        self._channel = channel

    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        controller: RpcController | None = None,
    ) -> Coroutine[Any, Any, Rep]:
        return self.rpc.call(self._channel, request, timeout=timeout, controller=controller)


class TypedStub(Generic[H]):
    """Base of a service's typed stub; ``H`` is the type its server's handlers must have."""

    SERVICE: ClassVar[ServiceDescriptor]

    def __init__(self, channel: RpcChannel) -> None:
        self.channel = channel

    @classmethod
    def serve(cls: type[TypedStub[H]], provider: RpcProvider, handlers: H) -> None:
        """Serve this service on ``provider`` with ``handlers`` (as :meth:`RpcProvider.register`
        does); mypy checks ``handlers`` against the stub's handler type ``H``."""
        provider.register(cls.SERVICE, handlers)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        service = cls.SERVICE
        rpcs = {name: rpc for name, rpc in vars(cls).items() if isinstance(rpc, Rpc)}
        missing = sorted(set(service.methods_by_name) - set(rpcs))
        if missing:
            raise TypeError(f"{cls.__name__} lacks methods {missing} of {service.full_name}")
        for name, rpc in rpcs.items():
            method = service.methods_by_name.get(name)
            if method is None:
                raise TypeError(f"{service.full_name} has no method {name!r}")
            types = (rpc.request_type.DESCRIPTOR.full_name, rpc.reply_type.DESCRIPTOR.full_name)
            if types != (method.input_type.full_name, method.output_type.full_name):
                raise TypeError(
                    f"{service.full_name}.{name} takes {method.input_type.full_name} and "
                    f"answers {method.output_type.full_name}, not {types[0]} and {types[1]}"
                )
            rpc.service = service.name
