"""Node configuration: a TOML file (``--config``) overlaid by command-line flags (flags win).

Safe defaults: everything binds to loopback; a non-loopback Raft address requires a password
(pysyncobj unpickles what arrives on its port); exec steps and chaos are off.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from beamflowd.core.vocabulary import DLQ_MAX_DEFAULT
from beamflowd.isolation import ModulePolicy

#: Default cap on a step worker's address space (RLIMIT_AS), in bytes.
DEFAULT_STEP_MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
#: Smallest accepted cap: below this an interpreter cannot even start.
MIN_STEP_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
#: Where cloud metadata endpoints live: http steps never reach them unless the operator says otherwise.
DEFAULT_HTTP_DENY_NETWORKS = ("169.254.0.0/16", "fe80::/10")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


class ConfigError(ValueError):
    """A bad configuration value; the message names the field."""


#: Where ``/metrics`` listens unless configured (9464: the port OpenTelemetry's Prometheus exporter uses).
DEFAULT_METRICS_ADDR = "127.0.0.1:9464"
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Deliveries (crashes of whatever ran a step attempt) before the step is poisoned.
MAX_DELIVERIES_DEFAULT = 3


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    #: node id -> Raft address "host:port", etcd-style ``--initial-cluster``.
    initial_cluster: Mapping[str, str]
    grpc_addr: str = "127.0.0.1:7001"
    data_dir: str = "./data"
    allow_exec: bool = False
    chaos_enabled: bool = False
    raft_password: str | None = None
    #: gRPC TLS (PEM paths). With tls_client_ca, clients must present a certificate signed by it.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    #: CA that signed the other nodes' certificates, for node-to-node calls; default tls_client_ca.
    tls_peer_ca: str | None = None
    #: Bearer tokens, one ``name:role:salt:sha256`` a line (docs/operations.md, ``beamctl dev token``).
    tokens_file: str | None = None
    #: Client-certificate subject CN -> role (reader, operator, admin); needs tls_client_ca.
    cert_roles: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "info"
    #: Seconds a step attempt may run when neither the step nor the workflow sets a timeout.
    default_step_timeout: float = 300.0
    #: Upper bound on concurrently running step attempts on this node.
    max_concurrent_attempts: int = 10_000
    #: Durability of the Raft journal: always | batch | off (see README "Durability").
    fsync: str = "batch"
    #: A node whose heartbeat the leader has not applied for this long is declared dead (seconds).
    lease_timeout: float = 2.0
    heartbeat_interval: float = 0.5
    #: Supervision: more than this many actor restarts within the window fails the workflow.
    max_actor_restarts: int = 5
    actor_restart_window: float = 30.0
    #: A step whose attempts killed the process running them this many times (its node, or its step
    #: worker) fails as ``poisoned`` instead of running again.
    max_deliveries: int = MAX_DELIVERIES_DEFAULT
    #: Dead-letter entries kept in the replicated state; when full, resolved/abandoned ones are collected
    #: first, and a queue full of unresolved entries counts further failures as overflow.
    dlq_max: int = DLQ_MAX_DEFAULT
    #: Retention of finished workflows: age in seconds and count; older/more are garbage-collected.
    retention_seconds: float = 3600.0
    retention_max_finished: int = 50_000
    #: How often the leader checks whether finished workflows are due for collection (seconds).
    gc_interval: float = 10.0
    #: Log compaction (snapshot) once this many entries are applied since the last one, at most every N s.
    compaction_min_entries: int = 20_000
    compaction_min_time: float = 60.0
    #: Check the state machine's invariants after every applied entry (O(state) each: tests, debugging).
    debug_invariants: bool = False
    #: Byte cap of one Raft entry (a group-committed batch of commands, pickled sizes); 1 MiB.
    raft_batch_bytes_max: int = 1 << 20
    #: Step worker processes for python and exec steps (user code never runs in the daemon).
    step_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Attempts that may wait for a free worker; beyond that an attempt fails as transient (and is retried).
    step_queue_max: int = 10_000
    #: RLIMIT_AS of each step worker, in bytes (TOML/flags also take "512MiB", "1GiB").
    step_memory_limit: int = DEFAULT_STEP_MEMORY_LIMIT_BYTES
    #: Modules python steps may call: "pkg" (that module) or "pkg.*" (every module below it). None by default.
    python_modules: tuple[str, ...] = ()
    #: Networks http steps may not connect to, checked after DNS resolution.
    http_deny_networks: tuple[str, ...] = DEFAULT_HTTP_DENY_NETWORKS
    #: Prometheus ``/metrics`` listen address; "" turns it off. Beyond loopback: HTTPS + bearer tokens.
    metrics_addr: str = DEFAULT_METRICS_ADDR
    #: This node joins an existing cluster (``beamflowd --join``): it must have been added with
    #: ``beamctl cluster member add`` first; it catches up from the leader (log or snapshot).
    join: bool = False
    #: Circuit breakers (per node, per integration): open after this many failed attempts within the window
    #: (seconds), stay open for open_for (seconds), close after this many successful probes.
    breaker_failures: int = 5
    breaker_window: float = 60.0
    breaker_open_for: float = 30.0
    breaker_half_open_successes: int = 3
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens_file or self.cert_roles)

    @property
    def metrics_exposed(self) -> bool:
        """Whether /metrics listens beyond this host (it then needs HTTPS and a bearer token)."""
        return bool(self.metrics_addr) and not _is_loopback(self.metrics_addr.rpartition(":")[0])

    @property
    def raft_addr(self) -> str:
        return self.initial_cluster[self.node_id]

    @property
    def raft_partners(self) -> list[str]:
        return [addr for nid, addr in sorted(self.initial_cluster.items()) if nid != self.node_id]


def parse_initial_cluster(text: str) -> dict[str, str]:
    """``n1=127.0.0.1:7101,n2=127.0.0.1:7102`` -> {"n1": "127.0.0.1:7101", ...}."""
    cluster: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, addr = part.partition("=")
        if not sep or not name or not addr:
            raise ConfigError(f"initial_cluster: expected id=host:port, got {part!r}")
        _check_addr(f"initial_cluster[{name}]", addr)
        if name in cluster:
            raise ConfigError(f"initial_cluster: node id {name!r} appears twice")
        cluster[name] = addr
    if not cluster:
        raise ConfigError("initial_cluster: empty")
    return cluster


def _check_addr(field_name: str, addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{field_name}: expected host:port, got {addr!r}")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_KNOWN = {f.name for f in fields(NodeConfig)} - {"extra"}


def build_config(file_values: Mapping[str, Any], flag_values: Mapping[str, Any]) -> NodeConfig:
    """Merge a TOML mapping and flags (None means "not given"), validate, and return the config."""
    merged: dict[str, Any] = {}
    for key, value in file_values.items():
        if key not in _KNOWN:
            close = difflib.get_close_matches(key, _KNOWN, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(_KNOWN))}"
            raise ConfigError(f"config: unknown key {key!r} ({hint})")
        merged[key] = value
    merged.update({k: v for k, v in flag_values.items() if v is not None})
    for required in ("node_id", "initial_cluster"):
        if not merged.get(required):
            raise ConfigError(f"{required}: required (flag --{required.replace('_', '-')} or config key)")
    cluster = merged["initial_cluster"]
    if isinstance(cluster, str):
        cluster = parse_initial_cluster(cluster)
    elif isinstance(cluster, Mapping):
        cluster = {str(k): str(v) for k, v in cluster.items()}
        for k, v in cluster.items():
            _check_addr(f"initial_cluster[{k}]", v)
    else:
        raise ConfigError("initial_cluster: expected a string or a table")
    merged["initial_cluster"] = cluster
    node_id = str(merged["node_id"])
    if node_id not in cluster:
        raise ConfigError(f"node_id: {node_id!r} is not in initial_cluster ({', '.join(cluster)})")
    grpc_host, _ = _check_addr("grpc_addr", str(merged.get("grpc_addr", NodeConfig.grpc_addr)))
    _check_security(merged, exposed=not _is_loopback(grpc_host))
    raft_host, _ = _check_addr("initial_cluster", cluster[node_id])
    if not _is_loopback(raft_host) and not merged.get("raft_password"):
        raise ConfigError(
            f"raft_password: required because the Raft address {cluster[node_id]} is not loopback "
            "(the Raft port would otherwise accept unauthenticated peers)"
        )
    if merged.get("fsync", "batch") not in ("always", "batch", "off"):
        raise ConfigError(f"fsync: expected always, batch or off, got {merged['fsync']!r}")
    lease = float(merged.get("lease_timeout", NodeConfig.lease_timeout))
    beat = float(merged.get("heartbeat_interval", NodeConfig.heartbeat_interval))
    if beat <= 0 or lease < 2 * beat:
        raise ConfigError("lease_timeout: must be at least twice heartbeat_interval (both > 0)")
    deliveries = merged.get("max_deliveries", NodeConfig.max_deliveries)
    if isinstance(deliveries, bool) or not isinstance(deliveries, int) or deliveries < 1:
        raise ConfigError(f"max_deliveries: expected an integer >= 1, got {deliveries!r}")
    dlq_max = merged.get("dlq_max", NodeConfig.dlq_max)
    if isinstance(dlq_max, bool) or not isinstance(dlq_max, int) or dlq_max < 1:
        raise ConfigError(f"dlq_max: expected an integer >= 1, got {dlq_max!r}")
    batch_bytes = merged.get("raft_batch_bytes_max", NodeConfig.raft_batch_bytes_max)
    if isinstance(batch_bytes, bool) or not isinstance(batch_bytes, int) or batch_bytes < 4096:
        raise ConfigError(f"raft_batch_bytes_max: expected an integer >= 4096, got {batch_bytes!r}")
    _check_breakers(merged)
    for key in ("allow_exec", "chaos_enabled", "debug_invariants"):
        if key in merged and not isinstance(merged[key], bool):
            raise ConfigError(f"{key}: expected true or false")
    _check_workers(merged)
    _check_observability(merged)
    try:
        return NodeConfig(**merged)
    except TypeError as exc:
        raise ConfigError(f"config: {exc}") from None


ROLES = ("reader", "operator", "admin")


def _check_breakers(merged: dict[str, Any]) -> None:
    """Breaker thresholds: positive counts and durations (seconds)."""
    for key in ("breaker_failures", "breaker_half_open_successes"):
        value = merged.get(key, getattr(NodeConfig, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}: expected an integer >= 1, got {value!r}")
    for key in ("breaker_window", "breaker_open_for"):
        value = merged.get(key, getattr(NodeConfig, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{key}: expected a number of seconds > 0, got {value!r}")
        merged[key] = float(value)


def _check_security(merged: dict[str, Any], *, exposed: bool) -> None:
    """TLS and auth keys are consistent and their files readable; an exposed gRPC port has both."""
    for key in ("tls_cert", "tls_key", "tls_client_ca", "tls_peer_ca", "tokens_file"):
        path = merged.get(key)
        if path is None:
            continue
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{key}: expected a file path")
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {path!r}: {exc.strerror}") from None
    if bool(merged.get("tls_cert")) != bool(merged.get("tls_key")):
        raise ConfigError("tls_cert, tls_key: set both or neither")
    if merged.get("tls_client_ca") and not merged.get("tls_cert"):
        raise ConfigError("tls_client_ca: needs tls_cert and tls_key (client certificates need TLS)")
    roles = merged.get("cert_roles", {})
    if not isinstance(roles, Mapping) or not all(isinstance(r, str) for r in roles.values()):
        raise ConfigError("cert_roles: expected a table of certificate CN = role")
    for cn, role in roles.items():
        if role not in ROLES:
            raise ConfigError(f"cert_roles[{cn}]: role {role!r} is not one of {', '.join(ROLES)}")
    if roles and not merged.get("tls_client_ca"):
        raise ConfigError("cert_roles: needs tls_client_ca (otherwise no client certificate is verified)")
    auth = bool(merged.get("tokens_file") or roles)
    if auth and not merged.get("raft_password"):
        raise ConfigError(
            "raft_password: required with tokens_file/cert_roles (nodes derive their peer token from it)"
        )
    if exposed and not (auth and merged.get("tls_cert")):
        raise ConfigError(
            f"grpc_addr {merged.get('grpc_addr')} is not loopback: set tls_cert and tls_key, and tokens_file "
            "and/or cert_roles (with tls_client_ca), to listen beyond this host"
        )


def parse_size(field_name: str, value: object) -> int:
    """Bytes from an int or "512MiB"-style text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{field_name}: expected bytes or a size like 512MiB or 1GiB, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _str_list(field_name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{field_name}: expected a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{field_name}: expected a list of strings")
    return tuple(value)


def _check_workers(merged: dict[str, Any]) -> None:
    """Step worker settings, python_modules and http_deny_networks: normalised in place."""
    for key in ("step_workers", "step_queue_max"):
        if key in merged:
            value = merged[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if key == "step_workers" else 0)
            ):
                raise ConfigError(f"{key}: expected an integer >= {1 if key == 'step_workers' else 0}")
    if "step_memory_limit" in merged:
        limit = parse_size("step_memory_limit", merged["step_memory_limit"])
        if limit < MIN_STEP_MEMORY_LIMIT_BYTES:
            raise ConfigError(f"step_memory_limit: at least {MIN_STEP_MEMORY_LIMIT_BYTES} bytes (64MiB)")
        merged["step_memory_limit"] = limit
    if "python_modules" in merged:
        modules = _str_list("python_modules", merged["python_modules"])
        try:
            ModulePolicy(modules)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        merged["python_modules"] = modules
    if "http_deny_networks" in merged:
        networks = _str_list("http_deny_networks", merged["http_deny_networks"])
        for net in networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(
                    f"http_deny_networks: {net!r} is not a network like 169.254.0.0/16"
                ) from None
        merged["http_deny_networks"] = networks


def _check_observability(merged: dict[str, Any]) -> None:
    """metrics_addr and log_level; metrics beyond loopback follow the gRPC rule (TLS and tokens)."""
    level = merged.get("log_level", NodeConfig.log_level)
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    addr = merged.get("metrics_addr", DEFAULT_METRICS_ADDR)
    if not isinstance(addr, str):
        raise ConfigError('metrics_addr: expected "host:port" or "" (off)')
    if not addr:
        return
    host, _ = _check_addr("metrics_addr", addr)
    if not _is_loopback(host) and not (merged.get("tls_cert") and merged.get("tokens_file")):
        raise ConfigError(
            f"metrics_addr {addr} is not loopback: set tls_cert, tls_key and tokens_file (metrics are then "
            'served over HTTPS to bearer tokens only), or use a loopback address, or "" to turn them off'
        )


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config: file {path!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path}: {exc}") from None


#: What a node id may look like: it names the node in commands, logs, the CLI and as a map key everywhere.
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check_member(node_id: str, raft_addr: str, grpc_addr: str) -> None:
    """A member as ``beamctl cluster member add`` gives it; ConfigError naming the bad field."""
    if not NODE_ID_PATTERN.fullmatch(node_id):
        raise ConfigError(f"node_id: expected letters, digits, '_', '.', '-' (at most 63), got {node_id!r}")
    _check_addr("raft_address", raft_addr)
    _check_addr("grpc_address", grpc_addr)
