"""Three nodes on three "hosts": Linux network namespaces on their own non-loopback addresses, with mTLS on
gRPC, bearer tokens and the Raft password, driven by beamctl over TLS from the host namespace.

Topology: a bridge in the host namespace (``.254``) and one veth pair per node, the node's end moved into
its namespace as ``eth0`` (``.1``, ``.2``, ``.3``). Cutting a node = ``ip link set <its host end> down``:
it is cut off from the peers and the host alike, as if its cable was pulled. Needs root (CI runs as root);
if the namespaces cannot be made the test fails saying why, it does not skip. Everything it created is
removed in ``finally``, and it only talks to addresses inside the namespaces it made.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster
from tests.secure import ADMIN_CN, NOBODY_CN, SecureSetup, make_setup

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NODES = ("n1", "n2", "n3")
IP_TIMEOUT_S = 10.0
#: Candidate third octets of 10.231.X.0/24; the first not in use on this host is taken.
SUBNET_CANDIDATES = 250
#: The installed console script, as an operator would run it.
BEAMCTL = str(Path(sys.executable).with_name("beamctl"))
NAP = """
name: nap
steps:
  - id: nap
    run: sleep
    with: {duration: 15s}  # outlasts the submits and the cut under load: finished only elsewhere
  - {id: after, run: noop, needs: nap}
"""


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


@dataclass
class Topology:
    """Names are derived from this process id, so concurrent runs on one machine do not collide."""

    tag: str
    octet: int

    @property
    def bridge(self) -> str:
        return f"bf{self.tag}br"

    def namespace(self, node_id: str) -> str:
        return f"bf{self.tag}{node_id}"

    def veth(self, node_id: str) -> str:
        return f"bf{self.tag}v{node_id[1:]}"

    def address(self, node_id: str) -> str:
        return f"10.231.{self.octet}.{NODES.index(node_id) + 1}"

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"10.231.{self.octet}.254/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for node_id in NODES:
            ns = self.namespace(node_id)
            ip("netns", "add", ns)
            ip("link", "add", self.veth(node_id), "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", self.veth(node_id), "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.address(node_id)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def destroy(self) -> list[str]:
        """Remove every namespace (their veth pairs go with them) and the bridge; returns what failed."""
        problems = []
        for node_id in NODES:
            try:
                ip("netns", "del", self.namespace(node_id))
            except RuntimeError as err:
                if "No such file" not in str(err):
                    problems.append(str(err))
        try:
            ip("link", "del", self.bridge)
        except RuntimeError as err:
            if "Cannot find device" not in str(err):
                problems.append(str(err))
        return problems

    def cut(self, node_id: str) -> None:
        ip("link", "set", self.veth(node_id), "down")

    def mend(self, node_id: str) -> None:
        ip("link", "set", self.veth(node_id), "up")

    def launcher(self, node_id: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(node_id)]


def free_octet() -> int:
    in_use = ip("-4", "-o", "addr", "show") + ip("-4", "route", "show")
    start = os.getpid() % SUBNET_CANDIDATES
    for i in range(SUBNET_CANDIDATES):
        octet = (start + i) % SUBNET_CANDIDATES + 1
        if f"10.231.{octet}." not in in_use:
            return octet
    raise RuntimeError("every 10.231.X.0/24 candidate is in use on this host")


def probe(topology: Topology, node_id: str) -> None:
    """A TCP round trip from the host namespace into ``node_id``'s, so a broken bridge fails clearly here."""
    server = (
        "import socket,sys;s=socket.create_server((sys.argv[1],7999));s.settimeout(10);"
        "c,_=s.accept();c.sendall(b'ok');c.close()"
    )
    proc = subprocess.Popen(
        [*topology.launcher(node_id), sys.executable, "-c", server, topology.address(node_id)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        last: Exception | None = None
        for _ in range(200):  # bounded; the server needs a moment to bind
            try:
                with socket.create_connection((topology.address(node_id), 7999), timeout=1) as conn:
                    assert conn.recv(2) == b"ok"
                    return
            except OSError as err:
                last = err
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"host cannot reach {topology.address(node_id)} in {topology.namespace(node_id)}: {last}"
        )
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def topology() -> Generator[Topology, None, None]:
    topo = Topology(tag=str(os.getpid() % 100_000), octet=0)
    try:
        topo.octet = free_octet()
        topo.create()
        for node_id in NODES:
            probe(topo, node_id)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        problems = topo.destroy()
        pytest.fail(
            "cannot build the network-namespace topology (needs root, iproute2, veth and bridge support): "
            f"{err}" + (f"; cleanup also failed: {problems}" if problems else ""),
            pytrace=False,
        )
    try:
        yield topo
    finally:
        problems = topo.destroy()
        assert not problems, f"namespace cleanup failed: {problems}"


def beamctl(setup: SecureSetup, endpoints: str, token: str, *args: str) -> Any:
    """The real CLI, in the host namespace, over TLS with a client certificate and a bearer token."""
    env = {**os.environ, "BEAMFLOW_TOKEN": token, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("BEAMFLOW_ENDPOINTS", None)
    return subprocess.run(
        [BEAMCTL, "--endpoints", endpoints, *setup.beamctl_tls(NOBODY_CN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )


def test_three_namespaces_with_tls_tokens_and_a_cut_link(topology: Topology, tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "security", NODES, hosts=[topology.address(n) for n in NODES])
    cluster = Cluster(
        tmp_path,
        hosts={n: topology.address(n) for n in NODES},
        launcher=topology.launcher,
        node_args=setup.node_args,
        credentials=setup.credentials(ADMIN_CN),
        token=setup.tokens["operator"],
    )
    try:
        cluster.start()
        cluster.wait_ready(timeout=90)
        endpoints = cluster.endpoints
        assert all(not addr.startswith("127.") for addr in endpoints.split(","))

        # Submit through beamctl over TLS; a reader's token is refused, an operator's accepted.
        definition = tmp_path / "nap.yaml"
        definition.write_text(NAP)
        refused = beamctl(setup, endpoints, setup.tokens["reader"], "submit", str(definition))
        assert refused.returncode == 6, refused.stderr
        ids = []
        for _ in range(3):
            done = beamctl(
                setup, endpoints, setup.tokens["operator"], "-o", "json", "submit", str(definition)
            )
            assert done.returncode == 0, done.stderr + cluster.log_tails()
            ids.append(json.loads(done.stdout)["workflow_id"])
        ids += [submit(cluster.workflow_stub("n1"), NAP, {}) for _ in range(9)]

        leader = cluster.leader_id()
        owners: dict[str, list[str]] = defaultdict(list)
        for wf_id in ids:
            wf = cluster.workflow_stub(leader).GetWorkflow(
                pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10
            )
            owners[wf.workflow.owner].append(wf_id)
        candidates = [n for n in NODES if n != leader and owners[n]]
        assert candidates, f"no follower owns a workflow: {dict(owners)}"
        victim = max(candidates, key=lambda n: len(owners[n]))
        survivor = leader

        topology.cut(victim)

        def victim_dead() -> bool:
            nodes = {n.id: n for n in cluster.cluster_status(survivor).nodes}
            return nodes[victim].liveness == "dead" and not nodes[victim].reachable

        cluster.wait_until(victim_dead, 30, f"{victim} (link down) to be declared dead")
        finished = wait_terminal(cluster, survivor, ids, timeout=90)
        for wf_id, wf in finished.items():
            assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, (wf_id, wf.error)
        for wf_id in owners[victim]:
            assert finished[wf_id].owner != victim, f"{wf_id} finished on the cut node"

        topology.mend(victim)
        cluster.wait_until(
            lambda: all(n.reachable for n in cluster.cluster_status(survivor).nodes),
            60,
            f"{victim} to be reachable again after its link came back",
        )
        digest = wait_converged(cluster, timeout=60)
        status = beamctl(setup, endpoints, setup.tokens["reader"], "-o", "json", "cluster", "status")
        assert status.returncode == 0, status.stderr
        nodes = json.loads(status.stdout)["nodes"]
        assert sorted(n["id"] for n in nodes) == list(NODES)
        assert {n["digest"] for n in nodes} == {digest}, nodes
    finally:
        cluster.close()
