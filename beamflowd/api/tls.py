"""gRPC credentials from the node config: the listener's TLS, and what this node presents to its peers.

Node-to-node calls (status fan-out, stats, chaos forwarding) use the node's own certificate as the client
certificate (so a peer that requires client certificates accepts it) and the peer token as bearer token.
"""

from __future__ import annotations

import grpc

from beamflowd.api import auth, peers
from beamflowd.config import ConfigError, NodeConfig


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path!r}: {exc.strerror}") from None


def server_credentials(config: NodeConfig) -> grpc.ServerCredentials | None:
    """TLS for the listener (client certificates required when ``tls_client_ca`` is set); None = plain."""
    if not (config.tls_cert and config.tls_key):
        return None
    chain = _read("tls_cert", config.tls_cert)
    key = _read("tls_key", config.tls_key)
    client_ca = _read("tls_client_ca", config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def peer_security(config: NodeConfig) -> peers.PeerSecurity:
    """How this node dials the others: TLS if it serves TLS (same PKI), the peer token if auth is on."""
    credentials = None
    if config.tls_cert and config.tls_key:
        ca_path = config.tls_peer_ca or config.tls_client_ca
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("tls_peer_ca", ca_path) if ca_path else None,
            private_key=_read("tls_key", config.tls_key),
            certificate_chain=_read("tls_cert", config.tls_cert),
        )
    token = auth.peer_token(config.raft_password) if config.auth_enabled and config.raft_password else None
    return peers.PeerSecurity(credentials=credentials, token=token)
