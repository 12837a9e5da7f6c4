"""Who may call what: bearer tokens and client-certificate subjects mapped to roles, in one interceptor.

Every RPC of every service is named in :data:`METHOD_ROLES` with the least role that may call it (a unit test
compares the table with the generated descriptors, so a new RPC cannot be left open by accident); a method
missing from it is refused to everyone. Health and reflection stay open so load balancers and tools work.

Identities, in order: a bearer token in ``authorization`` metadata (a bad one is UNAUTHENTICATED even if a
good certificate came with it), then the verified client certificate's subject CN looked up in
``cert_roles``. Nodes call each other with a peer token derived from ``raft_password``: whoever knows that
password can already write the replicated log, so it grants nothing new (role admin).

Tokens file: one ``name:role:salt:sha256`` a line (``#`` comments), where ``sha256`` is the hex digest of the
salt bytes followed by the token's UTF-8 bytes; ``beamctl dev token`` writes such lines. Only digests are
kept in memory, compared with :func:`hmac.compare_digest`; no token is ever logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from beamflowd.config import ROLES, ConfigError, NodeConfig

log = logging.getLogger("beamflowd.auth")


class Role(enum.IntEnum):
    READER = 1
    OPERATOR = 2
    ADMIN = 3


_R, _O, _A = Role.READER, Role.OPERATOR, Role.ADMIN

#: Method full name (as gRPC routes it) -> the least role allowed to call it.
METHOD_ROLES: dict[str, Role] = {
    "/beamflow.v1.WorkflowService/SubmitWorkflow": _O,
    "/beamflow.v1.WorkflowService/GetWorkflow": _R,
    "/beamflow.v1.WorkflowService/ListWorkflows": _R,
    "/beamflow.v1.WorkflowService/CancelWorkflow": _O,
    "/beamflow.v1.WorkflowService/WatchWorkflow": _R,
    "/beamflow.v1.WorkflowService/RetryWorkflow": _O,
    "/beamflow.v1.WorkflowService/ResubmitWorkflow": _O,
    "/beamflow.v1.WorkflowService/PauseWorkflow": _O,
    "/beamflow.v1.WorkflowService/ResumeWorkflow": _O,
    "/beamflow.v1.WorkflowService/GetWorkflowResult": _R,
    "/beamflow.v1.WorkflowService/CountWorkflows": _R,
    "/beamflow.v1.WorkflowService/BulkWorkflowAction": _O,
    "/beamflow.v1.DeadLetterService/ListDeadLetters": _R,
    "/beamflow.v1.DeadLetterService/GetDeadLetter": _R,
    "/beamflow.v1.DeadLetterService/RetryDeadLetter": _O,
    "/beamflow.v1.DeadLetterService/ResolveDeadLetter": _O,
    "/beamflow.v1.DeadLetterService/AbandonDeadLetter": _O,
    "/beamflow.v1.ClusterService/GetClusterStatus": _R,
    "/beamflow.v1.ClusterService/GetNodeStatus": _R,
    "/beamflow.v1.ClusterService/SaveSnapshot": _A,
    "/beamflow.v1.ClusterService/AddMember": _A,
    "/beamflow.v1.ClusterService/RemoveMember": _A,
    "/beamflow.v1.ClusterService/ListMembers": _R,
    "/beamflow.v1.WorkflowService/SignalWorkflow": _O,
    "/beamflow.v1.ClusterService/ListBreakers": _R,
    "/beamflow.v1.StatsService/GetStats": _R,
    "/beamflow.v1.StatsService/WatchStats": _R,
    "/beamflow.v1.ChaosService/KillNode": _A,
    "/beamflow.v1.ChaosService/Partition": _A,
    "/beamflow.v1.ChaosService/Heal": _A,
    "/beamflow.v1.ChaosService/PauseNode": _A,
    "/beamflow.v1.ChaosService/KillActor": _A,
    "/beamflow.v1.ChaosService/SetMonkey": _A,
    "/beamflow.v1.ChaosService/GetChaosStatus": _R,
    "/beamflow.v1.ChaosService/SetNodeFilter": _A,
    "/beamflow.v1.ChaosService/GetNodeChaos": _A,
}

#: Services anyone may call: liveness probes and API discovery.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

#: A tokens file with more entries than this is refused (each call hashes once per entry).
MAX_TOKENS = 1000
#: Longest bearer token accepted; longer ones are refused before hashing.
MAX_TOKEN_CHARS = 512

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_PEER_TOKEN_CONTEXT = b"beamflow peer token v1"


def hash_token(salt: bytes, token: str) -> bytes:
    """The digest stored in a tokens file: SHA-256 over the salt, then the token."""
    return hashlib.sha256(salt + token.encode()).digest()


def peer_token(raft_password: str) -> str:
    """The token nodes present to each other, derived from the cluster's shared Raft password."""
    return hmac.new(raft_password.encode(), _PEER_TOKEN_CONTEXT, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    salt: bytes
    digest: bytes


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role


def parse_tokens(text: str, source: str) -> list[TokenEntry]:
    """Parse a tokens file; errors name the file and line, never echo the line (it holds a hash)."""
    entries: list[TokenEntry] = []
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        where = f"tokens_file {source}, line {number}"
        if len(parts) != 4:
            raise ConfigError(f"{where}: expected name:role:salt:sha256")
        name, role, salt, digest = parts
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name must be 1-64 of A-Z a-z 0-9 _ . @ -")
        if role not in ROLES:
            raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
        if not (_HEX.match(salt) and len(salt) >= 16 and len(salt) % 2 == 0):
            raise ConfigError(f"{where}: salt must be at least 8 bytes in lowercase hex")
        if not (_HEX.match(digest) and len(digest) == 64):
            raise ConfigError(f"{where}: sha256 must be 64 lowercase hex digits")
        if name in names:
            raise ConfigError(f"{where}: name {name!r} appears twice")
        names.add(name)
        entries.append(TokenEntry(name, Role[role.upper()], bytes.fromhex(salt), bytes.fromhex(digest)))
        if len(entries) > MAX_TOKENS:
            raise ConfigError(f"tokens_file {source}: more than {MAX_TOKENS} entries")
    return entries


class Authorizer:
    """Maps presented credentials to an identity; pure, so it is tested without a server."""

    def __init__(
        self,
        tokens: Sequence[TokenEntry],
        cert_roles: Mapping[str, str],
        peer_secret: str | None,
    ) -> None:
        self._tokens = tuple(tokens)
        self._cert_roles = {cn: Role[role.upper()] for cn, role in cert_roles.items()}
        self._peer = hashlib.sha256(peer_secret.encode()).digest() if peer_secret else None

    @property
    def token_count(self) -> int:
        return len(self._tokens)

    def by_token(self, token: str) -> Identity | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        found: Identity | None = None
        if self._peer is not None and hmac.compare_digest(
            hashlib.sha256(token.encode()).digest(), self._peer
        ):
            found = Identity("peer", Role.ADMIN)
        # Every entry is compared, so the time taken does not tell which entry (if any) matched.
        for entry in self._tokens:
            if hmac.compare_digest(hash_token(entry.salt, token), entry.digest) and found is None:
                found = Identity(entry.name, entry.role)
        return found

    def by_certificate(self, common_name: str) -> Identity | None:
        role = self._cert_roles.get(common_name)
        return None if role is None else Identity(f"cn={common_name}", role)


def bearer_of(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token of an ``authorization: Bearer ...`` header; "" when the header is malformed."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def certificate_cn(context: grpc.aio.ServicerContext) -> str | None:
    """Subject CN of the client certificate that the TLS handshake verified, if any."""
    values = context.auth_context().get("x509_common_name") or []
    return values[0].decode(errors="replace") if values else None


Check = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses a call before its handler runs: UNAUTHENTICATED without valid credentials, else
    PERMISSION_DENIED below the method's role."""

    def __init__(self, authorizer: Authorizer, table: Mapping[str, Role] = METHOD_ROLES) -> None:
        self.authorizer = authorizer
        self.table = dict(table)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES:
            return handler
        needed = self.table.get(method)
        bearer = bearer_of(handler_call_details.invocation_metadata)

        async def check(context: grpc.aio.ServicerContext) -> None:
            identity = self._identify(bearer, context)
            if identity is None:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "authentication required: send a valid bearer token (beamctl --token) or a client "
                    "certificate whose CN is in cert_roles",
                )
                return
            if needed is None or identity.role < needed:
                want = needed.name.lower() if needed is not None else "a role this node does not define"
                log.info("denied %s to %s (role %s)", method, identity.name, identity.role.name.lower())
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method} needs {want}; {identity.name} is {identity.role.name.lower()}",
                )

        return _guarded(handler, check)

    def _identify(self, bearer: str | None, context: grpc.aio.ServicerContext) -> Identity | None:
        if bearer is not None:
            return self.authorizer.by_token(bearer)
        cn = certificate_cn(context)
        return self.authorizer.by_certificate(cn) if cn is not None else None


def _guarded(handler: grpc.RpcMethodHandler, check: Check) -> grpc.RpcMethodHandler:
    """The same handler with ``check`` run first, for each of the four call shapes."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.stream_unary is not None:
        stream_in = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await stream_in(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, check), **kwargs)
    return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, check), **kwargs)


def _streaming(
    inner: Callable[[Any, grpc.aio.ServicerContext], Any], check: Check
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await check(context)
        result = inner(request, context)
        if inspect.isasyncgen(result):
            async for item in result:
                yield item
        else:  # a coroutine that writes with context.write()
            await result

    return stream


def interceptors(config: NodeConfig) -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors: none when auth is off (a loopback-only node), else the auth check."""
    if not config.auth_enabled:
        return []
    authorizer = build_authorizer(config)
    log.info(
        "auth on: %d tokens, %d certificate subjects; health and reflection open",
        authorizer.token_count,
        len(config.cert_roles),
    )
    return [AuthInterceptor(authorizer)]


def build_authorizer(config: NodeConfig) -> Authorizer:
    """The node's tokens, certificate subjects and peer token (ConfigError if the tokens file is bad)."""
    tokens: list[TokenEntry] = []
    if config.tokens_file:
        try:
            with open(config.tokens_file, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"tokens_file: cannot read {config.tokens_file!r}: {exc}") from None
        tokens = parse_tokens(text, config.tokens_file)
    peer = peer_token(config.raft_password) if config.raft_password else None
    return Authorizer(tokens, config.cert_roles, peer)
