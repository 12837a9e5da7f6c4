"""The metrics of one node (a real single-node Raft in this process) and the /metrics endpoint's rules.

The shipped dashboard and alert rules may only name metrics that the registry really exposes.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from beamflowd.config import ConfigError, build_config
from beamflowd.metrics import MetricsServer, NodeMetrics, endpoint
from beamflowd.proposer import Proposer
from beamflowd.replication import RaftTuning, ReplicatedState
from beamflowd.stats import StatsAggregator
from tests.harness import REPO_ROOT, free_ports
from tests.secure import make_setup

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "beamflow.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Series Prometheus makes itself (not ours).
PROMETHEUS_OWN = {"up"}
NAME = re.compile(r"\b(?:beamflow_[a-z_]+|up)\b")


@contextmanager
def single_node(tmp_path: Path) -> Iterator[ReplicatedState]:
    (port,) = free_ports(1)
    data = str(tmp_path / "data")
    raft = ReplicatedState(f"127.0.0.1:{port}", [], data, RaftTuning(), None, lambda _: None)
    try:
        yield raft
    finally:
        raft.destroy()


def exposed_names(metrics: NodeMetrics) -> set[str]:
    """Every series name the registry can expose, histograms' and counters' suffixes included."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",),
        }[family.type]
        names |= {family.name + s for s in suffixes}
    return names


def referenced(text: str) -> set[str]:
    return set(NAME.findall(text))


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"]]
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [str(r["expr"]) for group in rules["groups"] for r in group["rules"]]


def test_dashboard_and_alerts_name_only_metrics_the_registry_exposes(tmp_path: Path) -> None:
    async def main() -> None:
        with single_node(tmp_path) as raft:
            loop = asyncio.get_running_loop()
            metrics = NodeMetrics("n1", raft, Proposer(raft, loop), StatsAggregator(raft, loop))
            have = exposed_names(metrics) | PROMETHEUS_OWN
            for source, exprs in (("dashboard", dashboard_exprs()), ("alerts", alert_exprs())):
                names = set().union(*(referenced(e) for e in exprs))
                assert names, f"{source} names no metric"
                missing = names - have
                assert not missing, f"{source} names metrics the node does not expose: {sorted(missing)}"

    asyncio.run(main())


def test_the_alerts_cover_no_leader_node_down_and_dead_letters() -> None:
    text = ALERTS.read_text()
    alerts = {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"]}
    assert "beamflow_raft_has_leader" in alerts["BeamflowNoLeader"]["expr"]
    assert "up{" in alerts["BeamflowNodeDown"]["expr"]
    assert "beamflow_dlq_entries" in alerts["BeamflowDeadLettersGrowing"]["expr"]
    assert "beamflow_dlq_overflow_total" in alerts["BeamflowDeadLetterQueueFull"]["expr"]


def test_the_dashboard_is_grafana_json_with_unique_panel_ids() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    for p in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        for target in p.get("targets", []):
            assert target["expr"] and target["refId"]


def test_a_scrape_reads_raft_and_counts_what_happened(tmp_path: Path) -> None:
    async def main() -> None:
        with single_node(tmp_path) as raft:
            loop = asyncio.get_running_loop()
            proposer = Proposer(raft, loop)
            metrics = NodeMetrics("n1", raft, proposer, StatsAggregator(raft, loop))
            metrics.attach(lambda _observer: None)
            for _ in range(200):  # a single node elects itself within a few ticks
                if raft.status().is_leader:
                    break
                await asyncio.sleep(0.05)
            metrics.batch_commands.observe(3)
            metrics._observe_step("noop", "ok", 0.002)
            samples = {
                s.name: s.value
                for family in text_string_to_metric_families(metrics.render().decode())
                for s in family.samples
                if not s.labels or s.name == "beamflow_step_duration_seconds_count"
            }
            assert samples["beamflow_raft_is_leader"] == 1
            assert samples["beamflow_raft_has_leader"] == 1
            assert samples["beamflow_raft_leader_changes_seen_total"] == 1
            assert samples["beamflow_raft_batch_commands_count"] == 1
            assert samples["beamflow_step_duration_seconds_count"] == 1
            assert samples["beamflow_workflows_in_flight"] == 0

    asyncio.run(main())


# -------------------------------------------------------------------------------------------- config rules


def test_metrics_addr_defaults_to_loopback_and_empty_turns_it_off() -> None:
    base = {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101"}
    assert build_config(base, {}).metrics_addr == "127.0.0.1:9464"
    off = build_config(base, {"metrics_addr": ""})
    assert off.metrics_addr == "" and not off.metrics_exposed
    assert endpoint(off, lambda: b"") is None


def test_metrics_beyond_loopback_need_tls_and_tokens() -> None:
    base = {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101"}
    with pytest.raises(ConfigError, match=r"metrics_addr 0\.0\.0\.0:9464 is not loopback: set tls_cert"):
        build_config(base, {"metrics_addr": "0.0.0.0:9464"})
    with pytest.raises(ConfigError, match="metrics_addr: expected host:port"):
        build_config(base, {"metrics_addr": "nonsense"})
    with pytest.raises(ConfigError, match="log_level: expected one of"):
        build_config({**base, "log_level": "loud"}, {})


# ----------------------------------------------------------------------------------------------- endpoint


@asynccontextmanager
async def serving(authorize: Callable[[str], bool] | None = None, **kwargs: Any) -> AsyncIterator[str]:
    (port,) = free_ports(1)
    server = MetricsServer(f"127.0.0.1:{port}", lambda: b"# metrics\n", authorize=authorize, **kwargs)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.close()


def test_the_endpoint_serves_only_get_metrics() -> None:
    async def main() -> None:
        async with serving() as addr, httpx.AsyncClient(base_url=f"http://{addr}", timeout=5) as client:
            ok = await client.get("/metrics")
            assert ok.status_code == 200 and ok.text == "# metrics\n"
            assert ok.headers["content-type"].startswith("text/plain; version=")
            assert (await client.get("/")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
            # A request head beyond the limit is dropped, not answered.
            with pytest.raises(httpx.HTTPError):
                await client.get("/metrics", headers={"x-big": "a" * 10_000})
            assert (await client.get("/metrics?x=1")).status_code == 200

    asyncio.run(main())


def test_with_authorization_a_bearer_token_is_required() -> None:
    async def main() -> None:
        async with (
            serving(authorize=lambda token: token == "good") as addr,
            httpx.AsyncClient(base_url=f"http://{addr}", timeout=5) as client,
        ):
            refused = await client.get("/metrics")
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert (await client.get("/metrics", headers={"authorization": "Bearer bad"})).status_code == 401
            assert (await client.get("/metrics", headers={"authorization": "Basic good"})).status_code == 401
            assert (await client.get("/metrics", headers={"authorization": "Bearer good"})).status_code == 200

    asyncio.run(main())


def test_exposed_metrics_are_https_for_tokens_of_the_tokens_file(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, ["n1"])
    (port,) = free_ports(1)
    config = build_config(
        {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101"},
        {
            "metrics_addr": f"0.0.0.0:{port}",
            "tls_cert": str(setup.pki / "n1.pem"),
            "tls_key": str(setup.pki / "n1-key.pem"),
            "tokens_file": str(setup.tokens_file),
            "raft_password": setup.password,
        },
    )
    server = endpoint(config, lambda: b"# tls\n")
    assert server is not None and server.ssl_context is not None

    async def main() -> None:
        assert server is not None
        await server.start()
        try:
            trust = ssl.create_default_context(cafile=str(setup.pki / "ca.pem"))
            async with httpx.AsyncClient(verify=trust, timeout=5) as client:
                url = f"https://127.0.0.1:{port}/metrics"
                assert (await client.get(url)).status_code == 401
                bearer = {"authorization": f"Bearer {setup.tokens['reader']}"}
                response = await client.get(url, headers=bearer)
                assert response.status_code == 200 and response.text == "# tls\n"
            async with httpx.AsyncClient(timeout=5) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get(f"http://127.0.0.1:{port}/metrics", headers=bearer)
        finally:
            await server.close()

    asyncio.run(main())
