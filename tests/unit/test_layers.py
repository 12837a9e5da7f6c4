"""The import contracts in ``pyproject.toml`` name the I/O side module by module; keep that list complete.

import-linter's forbidden contracts take explicit module names, so a new module of ``beamflowd`` that is not
listed would be importable from the core (or from ``beamctl``) without anyone noticing.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import beamflowd
import beamflowd.api

ROOT = Path(__file__).resolve().parent.parent.parent


def _contracts() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c["forbidden_modules"] for c in config["tool"]["importlinter"]["contracts"]}


def _io_modules() -> set[str]:
    top = {f"beamflowd.{m.name}" for m in pkgutil.iter_modules(beamflowd.__path__)}
    top -= {"beamflowd.core", "beamflowd.__main__"}
    return top


def test_core_contract_names_every_io_module() -> None:
    contract = _contracts()["the core imports nothing else of beamflowd"]
    assert _io_modules() <= set(contract)


def test_cli_contract_names_every_io_module_but_the_wire() -> None:
    contract = set(_contracts()["beamctl uses only the wire stubs and the core of beamflowd"])
    api = {f"beamflowd.api.{m.name}" for m in pkgutil.iter_modules(beamflowd.api.__path__)} - {
        "beamflowd.api.gen"
    }
    assert (_io_modules() - {"beamflowd.api"}) | api <= contract
