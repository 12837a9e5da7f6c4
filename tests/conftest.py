"""Shared fixtures: the ``cluster`` marker and a function-scoped 3-node cluster of real processes."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from tests.harness import Cluster

CLUSTER_READY_TIMEOUT_S = 30.0
_CLUSTER_KEY = pytest.StashKey[Cluster]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: starts real beamflowd processes (slower; needs free loopback ports)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test using the ``cluster`` fixture is a cluster test, marked or not (``-m 'not cluster'``)."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed cluster test, attach every node's log tail to the report."""
    report = yield
    cluster = item.stash.get(_CLUSTER_KEY, None)
    if cluster is not None and report.failed:
        report.sections.append(("beamflowd logs", cluster.log_tails()))
    return report


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Generator[Cluster, None, None]:
    """A fresh, ready 3-node cluster; every process group it started is killed on teardown."""
    harness = Cluster(tmp_path)
    request.node.stash[_CLUSTER_KEY] = harness
    try:
        harness.start()
        harness.wait_ready(timeout=CLUSTER_READY_TIMEOUT_S)
        yield harness
    finally:
        harness.close()
