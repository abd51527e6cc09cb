"""The worker's side of ``grpc://host:port``: Optuna's ``GrpcStorageProxy`` made safe to use.

What Optuna's client lacks, added here and nowhere else:

- **the token and TLS** of a proxy that demands them (:mod:`bridge_worker.storage.proxy_auth`):
  every call carries ``authorization: Bearer <token>``; with a CA the channel is TLS and the proxy's
  certificate is checked against it;
- **a deadline on every call** (``--proxy-timeout``): a proxy that is up but does not answer
  (stopped, swapping, deadlocked) costs a frame that long and is then a ``storage_error``, so a
  frame, and SIGTERM waiting behind it, never hangs;
- **errors a person can act on**: an unreachable, silent or token-refusing proxy is a
  :class:`ProxyUnavailable` saying so with its address, not a dump of gRPC's internal error;
- **a trial cache that follows study identity**: Optuna's client caches each study's trials by
  storage id, and SQLite gives a deleted study's id to the next study created. The cache of a
  study id is dropped whenever that id's identity token (:mod:`bridge_worker.storage.identity`, read
  at every frame) changes, and when this worker creates a study with that id.

Imports grpc: only :func:`bridge_worker.storage.handle.open_storage` imports this module, for a
``grpc://`` storage.
"""

from __future__ import annotations

import collections
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import grpc
import optuna
from optuna.storages import GrpcStorageProxy
from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
from optuna.storages._grpc.client import GrpcClientCache
from optuna.study import StudyDirection

from bridge_worker.storage.identity import IDENTITY_ATTR
from bridge_worker.storage.proxy_auth import METADATA_KEY, bearer


class ProxyUnavailable(ConnectionError):
    """The proxy did not answer, or refused this worker (a ``storage_error`` for the parent)."""


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class _ProxyCalls(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds the token and the deadline to every call; turns "no answer" into
    :class:`ProxyUnavailable`. Optuna's own handling of NOT_FOUND and ALREADY_EXISTS is
    untouched (those errors pass through as gRPC raised them)."""

    def __init__(self, address: str, token: str | None, timeout: float) -> None:
        self._address = address
        self._metadata = () if token is None else ((METADATA_KEY, bearer(token)),)
        self._timeout = timeout

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details = _CallDetails(
            details.method,
            self._timeout if details.timeout is None else details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        outcome = continuation(details, request)
        if isinstance(outcome, grpc.RpcError):
            problem = self.problem(outcome.code(), outcome.details())
            if problem is not None:
                raise ProxyUnavailable(problem) from None
        return outcome

    def problem(self, code: Any, details: str | None) -> str | None:
        """What a failed call says about the proxy itself, or None (a failure of the call)."""
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"the storage proxy at {self._address} is unreachable ({details})"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return (
                f"the storage proxy at {self._address} did not answer within "
                f"{self._timeout:g} s (--proxy-timeout); it may be stalled or overloaded"
            )
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return (
                f"the storage proxy at {self._address} refused this worker: {details} "
                "(give the proxy's token with --proxy-token-file)"
            )
        return None


class ProxyStorage(GrpcStorageProxy):
    """Optuna's gRPC storage client with the token, TLS, deadlines and identity-checked cache
    described in the module doc."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        token: str | None = None,
        tls_ca: bytes | None = None,
        timeout: float,
    ) -> None:
        self._token = token
        self._tls_ca = tls_ca
        self._timeout = timeout
        self._tokens: dict[int, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    def _setup(self) -> None:
        target = self.address
        options = [("grpc.max_receive_message_length", -1)]
        if self._tls_ca is None:
            self._raw_channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self._tls_ca)
            self._raw_channel = grpc.secure_channel(target, credentials, options=options)
        self._calls = _ProxyCalls(target, self._token, self._timeout)
        self._channel = grpc.intercept_channel(self._raw_channel, self._calls)
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._cache = GrpcClientCache(self._stub)

    def wait_server_ready(self, timeout: float | None = None) -> None:
        """Wait for the proxy on this very channel (TLS included), then make one call, which
        the proxy refuses without the right token."""
        try:
            grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ProxyUnavailable(
                f"the storage proxy at {self.address} is unreachable (nothing answered within "
                f"{timeout:g} s{'; is it serving TLS?' if self._tls_ca else ''})"
            ) from None
        try:
            self._stub.GetStudyIdFromName(
                api_pb2.GetStudyIdFromNameRequest(study_name=f"optuna-bridge:probe:{uuid.uuid4()}")
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def close(self) -> None:
        self._raw_channel.close()

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        study_id: int = super().create_new_study(directions, study_name)
        self._forget(study_id)
        return study_id

    def delete_study(self, study_id: int) -> None:
        try:
            super().delete_study(study_id)
        finally:
            self._forget(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        attrs: dict[str, Any] = super().get_study_system_attrs(study_id)
        token = attrs.get(IDENTITY_ATTR)
        with self._cache.lock:
            if study_id in self._tokens and self._tokens[study_id] != token:
                self._cache.studies.pop(study_id, None)  # another study under a reused id
            self._tokens[study_id] = token
        return attrs

    def _forget(self, study_id: int) -> None:
        with self._cache.lock:
            self._cache.studies.pop(study_id, None)
            self._tokens.pop(study_id, None)
