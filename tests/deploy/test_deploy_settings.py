"""Every CELLBLOCK_* name written in deploy/ (the Kubernetes manifests, the systemd units, the
example environment file, the container image, the scripts) is a setting the service or the
jail reads: a misspelt or retired name would be ignored without a word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import settings
from jail.config import JailConfig
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
NAME = re.compile(r"\bCELLBLOCK_[A-Z0-9_]+\b")
KNOWN = {s.name for s in settings.SETTINGS} | set(JailConfig().to_env())
FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def test_deploy_names_settings() -> None:
    named = {name for path in FILES for name in NAME.findall(path.read_text(errors="replace"))}
    # the files that matter here do name settings (the scan is not reading nothing)
    assert {"CELLBLOCK_REDIS_URL", "CELLBLOCK_WORKERS", "CELLBLOCK_JAIL_DIR"} <= named


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(DEPLOY)) for p in FILES])
def test_every_cellblock_name_is_a_real_setting(path: Path) -> None:
    unknown = sorted(set(NAME.findall(path.read_text(errors="replace"))) - KNOWN)
    assert not unknown, (
        f"deploy/{path.relative_to(DEPLOY)}: not settings of core/settings.py or jail/config.py: {unknown}"
    )
