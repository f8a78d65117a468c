"""ServiceStub: call a service's methods by name, built from its protobuf ServiceDescriptor."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from rpc.channel import RpcChannel
from rpc.controller import RpcController


class StubMethod:
    """One method of a stub: ``await stub.Method(request, timeout=..., controller=...)``.

    The request must be an instance of the method's input message class (TypeError otherwise);
    the result is an instance of its output message class. Errors are those of
    :meth:`RpcChannel.call`.
    """

    __slots__ = ("_channel", "_method", "_service", "request_type", "response_type")

    def __init__(self, channel: RpcChannel, method: MethodDescriptor) -> None:
        self._channel = channel
        self._service = method.containing_service.name
        self._method = method.name
        self.request_type: type[Message] = GetMessageClass(method.input_type)
        self.response_type: type[Message] = GetMessageClass(method.output_type)

    def __call__(
        self,
        request: Message,
        *,
        timeout: float | None = None,
        controller: RpcController | None = None,
    ) -> Coroutine[Any, Any, Message]:
        if type(request) is not self.request_type:
            raise TypeError(
                f"{self._service}.{self._method} takes "
                f"{self.request_type.DESCRIPTOR.full_name}, not {type(request).__name__}"
            )
        return self._channel.call(
            self._service,
            self._method,
            request,
            self.response_type,
            timeout=timeout,
            controller=controller,
        )


class ServiceStub:
    """Client-side proxy of one service: an attribute per RPC method, calling over ``channel``.

    Example: ``stub = ServiceStub(channel, kvserver_rpc_pb2.DESCRIPTOR.services_by_name[
    "kvServerRpc"])`` then ``reply = await stub.Get(GetArgs(...), timeout=0.5)``.
    """

    def __init__(self, channel: RpcChannel, service: ServiceDescriptor) -> None:
        self.service = service
        self._methods = {m.name: StubMethod(channel, m) for m in service.methods}

    def __getattr__(self, name: str) -> StubMethod:
        # Read through __dict__: during __init__ "_methods" itself may not exist yet.
        methods: dict[str, StubMethod] = self.__dict__.get("_methods", {})
        try:
            return methods[name]
        except KeyError:
            raise AttributeError(
                f"service {self.service.full_name} has no method {name!r}"
            ) from None
