"""A cluster with everything on: mTLS on gRPC, bearer tokens, certificate roles and the Raft password.

Makes a throwaway PKI and tokens file with beamctl's own ``dev certs`` / ``dev token`` code, writes one TOML
config per node, and gives the harness and beamctl the matching client credentials.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from beamctl import pki

#: Client certificate CNs: ``admin`` is mapped to the admin role; ``nobody`` is valid but has no role.
ADMIN_CN = "admin"
NOBODY_CN = "nobody"
ROLES = ("reader", "operator", "admin")


@dataclass
class SecureSetup:
    directory: Path
    password: str
    #: role -> a token with that role.
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def tokens_file(self) -> Path:
        return self.directory / "tokens"

    def node_config(self, node_id: str) -> Path:
        """A TOML config with TLS, client certificates required, tokens, cert roles and the password."""
        path = self.directory / f"{node_id}.toml"
        path.write_text(
            f'raft_password = "{self.password}"\n'
            f'tls_cert = "{self.pki / f"{node_id}.pem"}"\n'
            f'tls_key = "{self.pki / f"{node_id}-key.pem"}"\n'
            f'tls_client_ca = "{self.pki / "ca.pem"}"\n'
            f'tokens_file = "{self.tokens_file}"\n'
            f'[cert_roles]\n{ADMIN_CN} = "admin"\n'
        )
        return path

    def node_args(self, node_id: str) -> list[str]:
        return ["--config", str(self.node_config(node_id))]

    def credentials(self, client: str = NOBODY_CN) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=(self.pki / "ca.pem").read_bytes(),
            private_key=(self.pki / f"{client}-key.pem").read_bytes(),
            certificate_chain=(self.pki / f"{client}.pem").read_bytes(),
        )

    def beamctl_tls(self, client: str = NOBODY_CN) -> list[str]:
        """beamctl's global TLS options for ``client``'s certificate."""
        return [
            "--cacert",
            str(self.pki / "ca.pem"),
            "--cert",
            str(self.pki / f"{client}.pem"),
            "--key",
            str(self.pki / f"{client}-key.pem"),
        ]


def make_setup(directory: Path, nodes: Sequence[str], hosts: Sequence[str] = ()) -> SecureSetup:
    setup = SecureSetup(directory, password=secrets.token_hex(16))
    pki.make_certs(setup.pki, list(nodes), [ADMIN_CN, NOBODY_CN], list(hosts), days=1)
    for role in ROLES:
        setup.tokens[role] = pki.add_token(setup.tokens_file, f"test-{role}", role)
    return setup
