"""The ACL table in the replicated metadata: commands, snapshots, the published index."""

from __future__ import annotations

import json

import pytest

from broker.coordination.acls import AclsCreated, AclsDeleted, AclTable
from broker.coordination.commands import CreateAcls, DeleteAcls, command_from_dict, command_to_dict
from broker.coordination.state import ClusterState
from broker.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
)

pytestmark = pytest.mark.unit

T = ResourceType.TOPIC


def row(name: str, pattern: PatternType = PatternType.LITERAL, op: AclOperation = AclOperation.READ,
        principal: str = "User:a") -> list[object]:
    return AclBinding(T, name, pattern, principal, "*", op, AclPermission.ALLOW).to_row()


def test_create_is_a_set_and_reports_each_binding() -> None:
    table = AclTable()
    outcomes = table.create([row("a"), row("a"), row(""), ["not", "a", "row"]])
    assert [o.problem is None for o in outcomes] == [True, True, False, False]
    assert len(table) == 1 and table.index.count == 1


def test_delete_reports_each_binding_under_the_first_filter_that_matches() -> None:
    table = AclTable()
    table.create([row("a"), row("b"), row("ab", PatternType.PREFIXED)])
    outcomes = table.delete([
        AclBindingFilter(T, "a", PatternType.LITERAL).to_row(),
        AclBindingFilter(T, "abc", PatternType.MATCH).to_row(),
        AclBindingFilter(operation=AclOperation.UNKNOWN).to_row(),
        AclBindingFilter().to_row(),
    ])
    assert [[b.resource_name for b in o.removed] for o in outcomes] == [["a"], ["ab"], [], ["b"]]
    assert outcomes[2].problem is not None
    assert len(table) == 0 and table.index.count == 0


def test_index_finds_literal_wildcard_and_prefix_bindings() -> None:
    table = AclTable()
    table.create([row("orders"), row("*"), row("ord", PatternType.PREFIXED), row("pay", PatternType.PREFIXED)])
    names = sorted(b.resource_name for b in table.index.for_resource(T, "orders"))
    assert names == ["*", "ord", "orders"]
    assert table.index.for_resource(ResourceType.GROUP, "orders") == []


def test_commands_travel_as_json_and_apply_through_the_state() -> None:
    state = ClusterState()
    before = state.topology_version
    create = json.loads(json.dumps(command_to_dict(CreateAcls([row("a"), row("b", op=AclOperation.WRITE)]))))
    assert isinstance(command_from_dict(create), CreateAcls)
    created = state.apply(create, 1)
    assert isinstance(created, AclsCreated) and all(o.problem is None for o in created.outcomes)
    assert state.topology_version > before  # Metadata answers depend on ACLs
    delete = json.loads(json.dumps(command_to_dict(DeleteAcls([AclBindingFilter(operation=AclOperation.WRITE).to_row()]))))
    deleted = state.apply(delete, 2)
    assert isinstance(deleted, AclsDeleted)
    assert [b.resource_name for b in deleted.outcomes[0].removed] == ["b"]
    assert [b.resource_name for b in state.acls.matching(AclBindingFilter())] == ["a"]


def test_acls_survive_a_snapshot_and_old_snapshots_load() -> None:
    state = ClusterState()
    state.apply(CreateAcls([row("a"), row("p", PatternType.PREFIXED, AclOperation.ALL, "User:*")]), 1)
    copy = ClusterState.from_snapshot(state.to_snapshot())
    assert copy.to_snapshot() == state.to_snapshot()
    assert copy.acls.index.count == 2
    body = json.loads(state.to_snapshot())
    del body["acls"]  # written before ACLs existed
    old = ClusterState.from_snapshot(json.dumps(body).encode())
    assert len(old.acls) == 0


def test_load_snapshot_keeps_the_table_object_readers_hold() -> None:
    state = ClusterState()
    held = state.acls
    other = ClusterState()
    other.apply(CreateAcls([row("a")]), 1)
    state.load_snapshot(other.to_snapshot())
    assert state.acls is held and held.index.count == 1


def test_a_malformed_command_is_refused_without_change() -> None:
    state = ClusterState()
    result = state.apply({"kind": "create_acls", "bindings": "nope"}, 1)
    assert type(result).__name__ == "Refusal"
    assert len(state.acls) == 0
