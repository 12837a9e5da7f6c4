"""Auth without a server: the role table covers every RPC, tokens files parse strictly, credentials map to
roles, and the config refuses a node that would listen beyond loopback without TLS and auth."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import beamflowd.api.gen.beamflow.v1 as gen
from beamctl import pki
from beamflowd.api.auth import (
    METHOD_ROLES,
    Authorizer,
    Role,
    bearer_of,
    hash_token,
    parse_tokens,
    peer_token,
)
from beamflowd.config import ConfigError, build_config
from tests.harness import REPO_ROOT


def _all_methods() -> set[str]:
    methods: set[str] = set()
    for info in pkgutil.iter_modules(gen.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{gen.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            methods |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return methods


def test_role_table_covers_exactly_the_methods_of_every_generated_service() -> None:
    methods = _all_methods()
    assert len(methods) >= 18  # four services today; fewer means the descriptors were not found
    assert sorted(methods - set(METHOD_ROLES)) == [], "RPCs with no role: add them to METHOD_ROLES"
    assert sorted(set(METHOD_ROLES) - methods) == [], "METHOD_ROLES names RPCs that do not exist"


def test_roles_follow_the_documented_split() -> None:
    assert METHOD_ROLES["/beamflow.v1.WorkflowService/GetWorkflow"] is Role.READER
    assert METHOD_ROLES["/beamflow.v1.WorkflowService/WatchWorkflow"] is Role.READER
    assert METHOD_ROLES["/beamflow.v1.StatsService/WatchStats"] is Role.READER
    assert METHOD_ROLES["/beamflow.v1.WorkflowService/SubmitWorkflow"] is Role.OPERATOR
    assert METHOD_ROLES["/beamflow.v1.WorkflowService/CancelWorkflow"] is Role.OPERATOR
    assert METHOD_ROLES["/beamflow.v1.ChaosService/KillNode"] is Role.ADMIN
    assert METHOD_ROLES["/beamflow.v1.ChaosService/SetNodeFilter"] is Role.ADMIN


def test_a_token_made_by_beamctl_dev_token_is_accepted_with_its_role(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = pki.add_token(path, "ci", "operator")
    other = pki.add_token(path, "ops", "admin")
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert token not in text and other not in text  # only salted digests are stored
    entries = parse_tokens(text, str(path))
    authorizer = Authorizer(entries, {}, None)
    found = authorizer.by_token(token)
    assert found is not None and (found.name, found.role) == ("ci", Role.OPERATOR)
    found = authorizer.by_token(other)
    assert found is not None and found.role is Role.ADMIN
    assert authorizer.by_token(token + "x") is None
    assert authorizer.by_token("") is None
    assert authorizer.by_token("a" * 10_000) is None


def test_dev_token_refuses_a_duplicate_name(tmp_path: Path) -> None:
    pki.add_token(tmp_path / "tokens", "ci", "reader")
    with pytest.raises(Exception, match="already has an entry"):
        pki.add_token(tmp_path / "tokens", "ci", "admin")


def test_equal_tokens_get_different_salts_and_digests() -> None:
    one = pki.token_line("a", "reader", "same", b"\x01" * 16)
    two = pki.token_line("a", "reader", "same", b"\x02" * 16)
    assert one.split(":")[3] != two.split(":")[3]
    assert one.split(":")[3] == hash_token(b"\x01" * 16, "same").hex()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice:reader:00", "expected name:role:salt:sha256"),
        ("alice:root:" + "00" * 8 + ":" + "0" * 64, "role must be one of"),
        ("al ice:reader:" + "00" * 8 + ":" + "0" * 64, "name must be"),
        ("alice:reader:00:" + "0" * 64, "salt must be"),
        ("alice:reader:" + "00" * 8 + ":abc", "sha256 must be"),
    ],
)
def test_a_bad_tokens_line_names_the_file_and_line_but_not_its_content(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_tokens(f"# comment\n\n{line}\n", "/etc/tokens")
    assert "/etc/tokens, line 3" in str(info.value)
    assert line not in str(info.value)


def test_peer_token_depends_on_the_password_and_maps_to_admin() -> None:
    assert peer_token("a") != peer_token("b")
    authorizer = Authorizer([], {}, peer_token("a"))
    found = authorizer.by_token(peer_token("a"))
    assert found is not None and found.role is Role.ADMIN
    assert authorizer.by_token(peer_token("b")) is None


def test_certificate_subjects_map_to_their_roles_and_unknown_ones_to_nothing() -> None:
    authorizer = Authorizer([], {"ops": "operator"}, None)
    found = authorizer.by_certificate("ops")
    assert found is not None and found.role is Role.OPERATOR
    assert authorizer.by_certificate("someone") is None


def test_bearer_header_parsing() -> None:
    assert bearer_of([("authorization", "Bearer abc")]) == "abc"
    assert bearer_of([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_of([("authorization", "Basic abc")]) == ""
    assert bearer_of([("x-other", "1")]) is None
    assert bearer_of(None) is None


CLUSTER = {"node_id": "n1", "initial_cluster": "n1=10.231.0.1:7101"}


def test_a_non_loopback_grpc_address_without_tls_and_auth_is_refused_naming_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({**CLUSTER, "raft_password": "pw", "grpc_addr": "10.231.0.1:7001"}, {})
    for key in ("tls_cert", "tls_key", "tokens_file", "cert_roles"):
        assert key in str(info.value)
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    with pytest.raises(ConfigError, match="tls_cert"):  # auth without TLS would send tokens in clear
        build_config(
            {**CLUSTER, "raft_password": "pw", "grpc_addr": "0.0.0.0:7001", "tokens_file": str(tokens)}, {}
        )


def test_a_fully_secured_non_loopback_node_is_accepted(tmp_path: Path) -> None:
    pki.make_certs(tmp_path, ["n1"], ["admin"], ["10.231.0.1"], days=1)
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    config = build_config(
        {
            **CLUSTER,
            "raft_password": "pw",
            "grpc_addr": "10.231.0.1:7001",
            "tls_cert": str(tmp_path / "n1.pem"),
            "tls_key": str(tmp_path / "n1-key.pem"),
            "tls_client_ca": str(tmp_path / "ca.pem"),
            "cert_roles": {"admin": "admin"},
        },
        {"tokens_file": str(tokens)},
    )
    assert config.auth_enabled and config.cert_roles == {"admin": "admin"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"raft_password": "pw", "cert_roles": {"a": "admin"}}, "cert_roles: needs tls_client_ca"),
        ({"raft_password": "pw", "tls_cert": "/nonexistent.pem"}, "tls_cert: cannot read"),
        ({"cert_roles": {"a": "root"}}, "role 'root' is not one of"),
    ],
)
def test_inconsistent_security_keys_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config({"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101", **values}, {})


def test_auth_needs_the_raft_password_for_the_peer_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    with pytest.raises(ConfigError, match="raft_password: required"):
        build_config(
            {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101", "tokens_file": str(tokens)}, {}
        )


def test_beamflowd_exits_non_zero_with_one_line_naming_the_keys() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "beamflowd",
            "--node-id",
            "n1",
            "--initial-cluster",
            "n1=127.0.0.1:7101",
            "--grpc-addr",
            "0.0.0.0:7001",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "tls_cert" in lines[0] and "tokens_file" in lines[0] and "not loopback" in lines[0]


def test_a_non_loopback_raft_address_needs_the_raft_password() -> None:
    with pytest.raises(ConfigError, match="raft_password: required because the Raft address"):
        build_config(CLUSTER, {})


def test_pysyncobj_can_encrypt_with_the_password() -> None:
    """cryptography is a declared dependency: without it pysyncobj cannot use raft_password at all."""
    from pysyncobj import encryptor

    assert encryptor.HAS_CRYPTO
    box = encryptor.getEncryptor("pw")
    sealed = box.encrypt(b"append entries")
    assert sealed != b"append entries" and box.decrypt(sealed) == b"append entries"


def test_beamctl_never_sends_a_token_in_plaintext_beyond_loopback() -> None:
    from beamctl.errors import CliError
    from beamctl.security import Security, open_channel

    with pytest.raises(CliError, match="refusing to send --token in plaintext"):
        open_channel("10.231.0.1:7001", Security(token="t"), [])
    open_channel("127.0.0.1:7001", Security(token="t"), []).close()  # loopback: allowed
    with pytest.raises(CliError, match="--cert and --key go together"):
        Security(cert="me.pem")
    assert "t0ken" not in repr(Security(token="t0ken"))
