"""Fixtures of the chaos tests: a 3-node harness cluster with chaos enabled, and a supervised dev cluster."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from tests.chaos.support import DevCluster, Endpoints
from tests.conftest import _CLUSTER_KEY
from tests.harness import Cluster


@pytest.fixture
def chaos_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Generator[Cluster, None, None]:
    harness = Cluster(tmp_path, extra_args=["--enable-chaos"])
    request.node.stash[_CLUSTER_KEY] = harness
    try:
        harness.start()
        harness.wait_ready(timeout=30)
        yield harness
    finally:
        harness.close()


@pytest.fixture
def ends(chaos_cluster: Cluster) -> Generator[Endpoints, None, None]:
    e = Endpoints({n: chaos_cluster.grpc_addr(n) for n in chaos_cluster.nodes}, chaos_cluster.log_tails)
    try:
        yield e
    finally:
        e.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "restart_delay(duration): the dev supervisor's restart delay")


@pytest.fixture
def dev_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Generator[DevCluster, None, None]:
    marker = request.node.get_closest_marker("restart_delay")
    dev = DevCluster(tmp_path / "dev", restart_delay=marker.args[0] if marker else "1s")
    request.node.stash[_CLUSTER_KEY] = dev  # type: ignore[arg-type]  # duck-typed: log_tails()
    try:
        dev.up()
        yield dev
    finally:
        dev.close()
