"""``beamflowd check-config``: unknown keys name the closest valid one; TLS and token files are checked
before a deploy finds them; the effective config is printed with the Raft password masked."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from beamctl import pki
from beamflowd.checkconfig import check, render
from beamflowd.config import ConfigError
from tests.harness import REPO_ROOT

BASE = 'node_id = "n1"\ninitial_cluster = "n1=127.0.0.1:7101"\n'


def run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beamflowd", "check-config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_misspelt_key_names_the_closest_valid_one(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    path.write_text(BASE + 'tls_certs = "x.pem"\n')
    result = run(path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "beamflowd: error: config: unknown key 'tls_certs' (did you mean 'tls_cert'?)"
    )
    assert result.stdout == ""


def test_a_valid_file_prints_the_effective_config_as_toml_without_the_password(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    path.write_text(BASE + 'raft_password = "hunter2"\nlease_timeout = 3.0\n')
    result = run(path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    effective = tomllib.loads(result.stdout)
    assert effective["lease_timeout"] == 3.0
    assert effective["fsync"] == "batch"  # defaults are shown too
    assert effective["raft_password"] == "<set>"
    assert effective["initial_cluster"] == {"n1": "127.0.0.1:7101"}


def secured(tmp_path: Path) -> str:
    pki.make_certs(tmp_path, ["n1", "n2"], ["admin"], [], days=1)
    pki.add_token(tmp_path / "tokens", "ci", "operator")
    return (
        BASE
        + f'raft_password = "pw"\ntls_cert = "{tmp_path / "n1.pem"}"\ntls_key = "{tmp_path / "n1-key.pem"}"\n'
        f'tls_client_ca = "{tmp_path / "ca.pem"}"\ntokens_file = "{tmp_path / "tokens"}"\n'
        '[cert_roles]\nadmin = "admin"\n'
    )


def test_a_secured_config_passes_and_renders_back_to_the_same_values(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    path.write_text(secured(tmp_path))
    config = check(str(path))
    effective = tomllib.loads(render(config))
    assert effective["tls_cert"] == str(tmp_path / "n1.pem")
    assert effective["cert_roles"] == {"admin": "admin"}


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    path.write_text(secured(tmp_path).replace("n1-key.pem", "n2-key.pem"))
    with pytest.raises(ConfigError, match="tls_key: does not belong to the certificate"):
        check(str(path))


def test_a_broken_tokens_file_is_found_by_check_config(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    path.write_text(secured(tmp_path))
    with open(tmp_path / "tokens", "a") as f:
        f.write("broken line\n")
    with pytest.raises(ConfigError, match="line 2: expected name:role:salt:sha256"):
        check(str(path))


def test_a_certificate_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n1.toml"
    text = secured(tmp_path)
    (tmp_path / "n1.pem").write_text("not a certificate\n")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"tls_cert: .* is not a PEM certificate"):
        check(str(path))
