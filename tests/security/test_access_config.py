"""The access-control settings in each of the config's three forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import BrokerConfig, build_config

pytestmark = pytest.mark.unit


def test_defaults_keep_a_cluster_without_acls_open() -> None:
    config = BrokerConfig()
    assert config.allow_everyone_if_no_acl_found is True
    assert config.super_users == ()


def test_environment_takes_kafkas_semicolon_list(tmp_path: Path) -> None:
    config = build_config({}, environ={"WALRUS_SUPER_USERS": "User:a; User:b;",
                                       "WALRUS_ALLOW_EVERYONE_IF_NO_ACL_FOUND": "false"})
    assert config.super_users == ("User:a", "User:b")
    assert config.allow_everyone_if_no_acl_found is False


def test_toml_takes_a_list_or_a_string(tmp_path: Path) -> None:
    path = tmp_path / "walrus.toml"
    path.write_text('super_users = ["User:admin"]\nallow_everyone_if_no_acl_found = false\n')
    config = build_config({}, config_file=path, environ={})
    assert config.super_users == ("User:admin",)
    assert config.allow_everyone_if_no_acl_found is False
    path.write_text('super_users = "User:x;User:y"\n')
    assert build_config({}, config_file=path, environ={}).super_users == ("User:x", "User:y")
