"""Auth on a real loopback cluster with mTLS, tokens, certificate roles and the Raft password.

Every method of every service is called without credentials, with a bad token and with each role below
its minimum: all are refused before any handler runs (UNAUTHENTICATED / PERMISSION_DENIED). Health stays
open; the node-to-node fan-out authenticates (GetClusterStatus sees every peer); no token reaches a log.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

import beamflowd.api.gen.beamflow.v1 as gen
from beamctl.main import app
from beamflowd.api.auth import METHOD_ROLES, Role
from tests.harness import Cluster
from tests.secure import ADMIN_CN, NOBODY_CN, SecureSetup, make_setup

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CALL_TIMEOUT_S = 5.0
HELLO = "name: hello\nsteps:\n  - id: greet\n    run: noop\n"


def _methods() -> list[descriptor.MethodDescriptor]:
    found = []
    for info in pkgutil.iter_modules(gen.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{gen.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                found.extend(service.methods)
    return found


def call(channel: grpc.Channel, method: descriptor.MethodDescriptor) -> None:
    """Invoke ``method`` with an empty request; raises the RpcError if the call or its first message fails."""
    request = GetMessageClass(method.input_type)()
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize, deserialize = type(request).SerializeToString, GetMessageClass(method.output_type).FromString
    if method.client_streaming and method.server_streaming:
        stream = channel.stream_stream(path, serialize, deserialize)(iter([request]), timeout=CALL_TIMEOUT_S)
    elif method.client_streaming:
        channel.stream_unary(path, serialize, deserialize)(iter([request]), timeout=CALL_TIMEOUT_S)
        return
    elif method.server_streaming:
        stream = channel.unary_stream(path, serialize, deserialize)(request, timeout=CALL_TIMEOUT_S)
    else:
        channel.unary_unary(path, serialize, deserialize)(request, timeout=CALL_TIMEOUT_S)
        return
    try:
        next(iter(stream), None)
    finally:
        stream.cancel()


def refusal(channel: grpc.Channel, method: descriptor.MethodDescriptor) -> grpc.RpcError:
    try:
        call(channel, method)
    except grpc.RpcError as err:
        return err
    raise AssertionError(f"{method.full_name} was not refused")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Generator[tuple[Cluster, SecureSetup], None, None]:
    tmp = tmp_path_factory.mktemp("auth")
    setup = make_setup(tmp / "security", ["n1", "n2", "n3"])
    cluster = Cluster(
        tmp, node_args=setup.node_args, credentials=setup.credentials(ADMIN_CN), token=setup.tokens["reader"]
    )
    try:
        cluster.start()
        cluster.wait_ready(timeout=60)
        yield cluster, setup
    finally:
        cluster.close()


def channel_for(cluster: Cluster, setup: SecureSetup, client: str, token: str | None) -> grpc.Channel:
    from beamctl.security import BearerInterceptor

    channel = grpc.secure_channel(
        cluster.grpc_addr("n1"), setup.credentials(client), options=[("grpc.enable_http_proxy", 0)]
    )
    return grpc.intercept_channel(channel, BearerInterceptor(token)) if token else channel


def test_every_method_refuses_missing_and_bad_credentials(secure: tuple[Cluster, SecureSetup]) -> None:
    cluster, setup = secure
    methods = _methods()
    assert {f"/{m.containing_service.full_name}/{m.name}" for m in methods} == set(METHOD_ROLES)
    for token in (None, "not-a-token", setup.tokens["admin"] + "x"):
        with channel_for(cluster, setup, NOBODY_CN, token) as channel:
            for method in methods:
                err = refusal(channel, method)
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (method.full_name, token, err)


def test_every_method_refuses_roles_below_its_minimum(secure: tuple[Cluster, SecureSetup]) -> None:
    cluster, setup = secure
    refused = 0
    for role in (Role.READER, Role.OPERATOR):
        with channel_for(cluster, setup, NOBODY_CN, setup.tokens[role.name.lower()]) as channel:
            for method in _methods():
                needed = METHOD_ROLES[f"/{method.containing_service.full_name}/{method.name}"]
                if needed <= role:
                    continue
                err = refusal(channel, method)
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (method.full_name, role, err)
                assert f"needs {needed.name.lower()}" in (err.details() or "")
                refused += 1
    assert refused >= 10  # chaos (admin) and submit/cancel (operator) exist


def test_allowed_roles_reach_the_handlers(secure: tuple[Cluster, SecureSetup]) -> None:
    """A reader's read-only calls get past auth (the handler may still dislike the empty request)."""
    cluster, setup = secure
    with channel_for(cluster, setup, NOBODY_CN, setup.tokens["reader"]) as channel:
        for method in _methods():
            if METHOD_ROLES[f"/{method.containing_service.full_name}/{method.name}"] is not Role.READER:
                continue
            try:
                call(channel, method)
            except grpc.RpcError as err:
                assert err.code() not in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                ), (
                    method.full_name,
                    err,
                )


def test_health_is_open_and_peers_authenticate_to_each_other(secure: tuple[Cluster, SecureSetup]) -> None:
    cluster, setup = secure
    with channel_for(cluster, setup, NOBODY_CN, None) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    # GetClusterStatus asks every peer for its own report: over mTLS with the peer token.

    def all_reachable() -> Any:
        status = cluster.cluster_status("n1")
        return status if all(n.reachable for n in status.nodes) else None

    status = cluster.wait_until(all_reachable, 30, "every peer to answer n1's status fan-out")
    assert sorted(n.id for n in status.nodes) == ["n1", "n2", "n3"], status


def test_without_a_client_certificate_the_handshake_fails(secure: tuple[Cluster, SecureSetup]) -> None:
    cluster, setup = secure
    credentials = grpc.ssl_channel_credentials((setup.pki / "ca.pem").read_bytes())
    with (
        grpc.secure_channel(cluster.grpc_addr("n1"), credentials) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def beamctl(cluster: Cluster, setup: SecureSetup, client: str, *args: str, token: str | None = None) -> Any:
    env = {"BEAMFLOW_TOKEN": token} if token else {}
    return CliRunner().invoke(
        app, ["--endpoints", cluster.endpoints, *setup.beamctl_tls(client), *args], env=env
    )


def test_beamctl_with_tls_tokens_and_certificate_roles(
    secure: tuple[Cluster, SecureSetup], tmp_path: Path
) -> None:
    cluster, setup = secure
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    denied = beamctl(cluster, setup, NOBODY_CN, "submit", str(path), token=setup.tokens["reader"])
    assert denied.exit_code == 6, denied.output
    assert "needs operator" in denied.output
    anonymous = beamctl(cluster, setup, NOBODY_CN, "cluster", "status")
    assert anonymous.exit_code == 6, anonymous.output
    done = beamctl(
        cluster, setup, NOBODY_CN, "-o", "json", "submit", str(path), "--wait", token=setup.tokens["operator"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "succeeded"
    # The admin certificate alone (no token) carries the admin role: it may read too.
    status = beamctl(cluster, setup, ADMIN_CN, "-o", "json", "cluster", "status")
    assert status.exit_code == 0, status.output


def test_no_token_or_password_reaches_a_log(secure: tuple[Cluster, SecureSetup]) -> None:
    cluster, setup = secure
    from beamflowd.api.auth import peer_token

    secrets_ = [*setup.tokens.values(), setup.password, peer_token(setup.password)]
    for node in cluster.nodes.values():
        text = node.log_path.read_text(errors="replace")
        assert "auth on" in text  # the node did log its auth set-up, only without the secrets
        for secret in secrets_:
            assert secret not in text, f"a secret appears in {node.log_path}"
