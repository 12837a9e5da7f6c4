"""``beamflowd``: run one BEAMFlow node. Flags override the TOML config file."""

from __future__ import annotations

import argparse
import asyncio
import sys

from beamflowd.config import ConfigError, build_config, load_toml

EXAMPLE = """example:
  beamflowd --node-id n1 \\
    --initial-cluster n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103 \\
    --grpc-addr 127.0.0.1:7001 --data-dir ./data/n1
  beamflowd --config deploy/config/n1.toml
  beamflowd check-config deploy/config/n1.toml   # validate, print the effective config
  beamflowd restore backup.db --data-dir ./data/n1 --node-id n1 \
    --initial-cluster n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103   # seed from a backup
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="beamflowd",
        description="Run one BEAMFlow node (Raft member, workflow executor, gRPC API).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="TOML config file; flags given here override its keys")
    parser.add_argument("--node-id", dest="node_id", help="this node's id, one of --initial-cluster")
    parser.add_argument(
        "--initial-cluster",
        dest="initial_cluster",
        help="all members as id=host:port (Raft addresses), comma separated",
    )
    parser.add_argument("--grpc-addr", dest="grpc_addr", help="gRPC listen address (default 127.0.0.1:7001)")
    parser.add_argument("--data-dir", dest="data_dir", help="Raft journal and snapshots (default ./data)")
    parser.add_argument(
        "--allow-exec",
        dest="allow_exec",
        action="store_true",
        default=None,
        help="allow `exec` steps to run programs on this node (off by default)",
    )
    parser.add_argument(
        "--enable-chaos",
        dest="chaos_enabled",
        action="store_true",
        default=None,
        help="accept destructive chaos calls (off by default)",
    )
    parser.add_argument(
        "--fsync",
        choices=["always", "batch", "off"],
        help="journal durability before acknowledging (default batch; see README)",
    )
    parser.add_argument(
        "--lease-timeout",
        dest="lease_timeout",
        type=float,
        help="seconds without a heartbeat before the leader declares a node dead (default 2)",
    )
    parser.add_argument(
        "--compaction-min-entries",
        dest="compaction_min_entries",
        type=int,
        help="snapshot the log after this many applied entries (default 20000)",
    )
    parser.add_argument(
        "--compaction-min-time",
        dest="compaction_min_time",
        type=float,
        help="at most one snapshot per this many seconds (default 60)",
    )
    parser.add_argument(
        "--debug-invariants",
        dest="debug_invariants",
        action="store_true",
        default=None,
        help="check the state machine's invariants after every applied entry and stop on a violation "
        "(slow: for tests and debugging)",
    )
    parser.add_argument(
        "--raft-batch-bytes-max",
        dest="raft_batch_bytes_max",
        type=int,
        help="byte cap of one Raft entry of group-committed commands (default 1048576)",
    )
    for key, what in (
        ("tls_cert", "PEM certificate (chain) of this node's gRPC listener"),
        ("tls_key", "PEM private key of --tls-cert"),
        ("tls_client_ca", "PEM CA bundle; clients must present a certificate it signed"),
        ("tls_peer_ca", "PEM CA bundle for the other nodes' certificates (default --tls-client-ca)"),
        ("tokens_file", "bearer tokens, one name:role:salt:sha256 a line (see docs/operations.md)"),
    ):
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, metavar="FILE", help=what)
    parser.add_argument(
        "--step-workers",
        dest="step_workers",
        type=int,
        help="worker processes for python and exec steps (default: CPU count)",
    )
    parser.add_argument(
        "--step-queue-max",
        dest="step_queue_max",
        type=int,
        help="attempts that may wait for a free step worker (default 10000)",
    )
    parser.add_argument(
        "--step-memory-limit",
        dest="step_memory_limit",
        help="address-space cap of each step worker, bytes or e.g. 512MiB (default 1GiB)",
    )
    parser.add_argument(
        "--python-module",
        dest="python_modules",
        action="append",
        metavar="PATTERN",
        help="a module python steps may call: pkg or pkg.* (repeatable; none by default)",
    )
    parser.add_argument(
        "--http-deny-network",
        dest="http_deny_networks",
        action="append",
        metavar="CIDR",
        help="a network http steps may not reach (repeatable; default 169.254.0.0/16 and fe80::/10)",
    )
    parser.add_argument(
        "--join",
        dest="join",
        action="store_true",
        default=None,
        help="join an existing cluster: add this node first with `beamctl cluster member add`, and give "
        "--initial-cluster as the current members plus this node",
    )
    parser.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--metrics-addr",
        dest="metrics_addr",
        metavar="HOST:PORT",
        help='Prometheus /metrics listen address (default 127.0.0.1:9464; "" turns it off)',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["check-config"]:
        from beamflowd.checkconfig import main as check_config

        sys.exit(check_config(given[1:]))
    if given[:1] == ["restore"]:
        from beamflowd.backup import main as restore

        sys.exit(restore(given[1:]))
    args = parse_args(argv)
    try:
        file_values = load_toml(args.config) if args.config else {}
        flags = {k: v for k, v in vars(args).items() if k != "config"}
        config = build_config(file_values, flags)
    except ConfigError as exc:
        print(f"beamflowd: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from beamflowd import logs

    logs.configure(config.node_id, config.log_level)

    from beamflowd.node import Node

    async def run() -> None:
        await Node(config).run()

    try:
        asyncio.run(run())
    except ConfigError as exc:  # found when the node reads its TLS or token files
        print(f"beamflowd: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"beamflowd: error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
