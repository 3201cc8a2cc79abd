"""The group state machine's allowed moves and protocol bookkeeping."""

from __future__ import annotations

import pytest

from broker.groups.group import Group
from broker.groups.member import Member
from broker.groups.state import GroupState, IllegalStateTransition

pytestmark = pytest.mark.unit

S = GroupState


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ([S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE, S.STABLE], True),
        ([S.PREPARING_REBALANCE, S.EMPTY], True),
        ([S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE], True),
        ([S.DEAD], True),
        ([S.STABLE], False),
        ([S.COMPLETING_REBALANCE], False),
        ([S.PREPARING_REBALANCE, S.STABLE], False),
        ([S.PREPARING_REBALANCE, S.PREPARING_REBALANCE], False),
        ([S.DEAD, S.EMPTY], False),
    ],
)
def test_only_kafkas_transitions_are_allowed(path: list[GroupState], allowed: bool):
    group = Group("g")
    *prefix, last = path
    for state in prefix:
        group.transition_to(state)
    if allowed:
        group.transition_to(last)
        assert group.state is last
    else:
        with pytest.raises(IllegalStateTransition):
            group.transition_to(last)


def test_state_names_parse_in_any_case():
    assert GroupState.parse("completingrebalance") is S.COMPLETING_REBALANCE
    assert GroupState.parse("STABLE") is S.STABLE
    assert GroupState.parse("Rebalancing") is None


def member(member_id: str, *protocols: str, instance: str | None = None) -> Member:
    return Member(
        member_id=member_id,
        group_instance_id=instance,
        client_id="c",
        client_host="h",
        session_timeout_ms=1000,
        rebalance_timeout_ms=1000,
        protocol_type="consumer",
        protocols=[(name, name.encode()) for name in protocols],
    )


def test_protocol_support_follows_members_coming_and_going():
    group = Group("g")
    assert group.supports_protocols("consumer", ["range"])
    assert not group.supports_protocols("", ["range"])
    group.add(member("a", "range", "roundrobin"))
    group.add(member("b", "roundrobin"))
    assert group.leader_id == "a"
    assert group.supports_protocols("consumer", ["roundrobin"])
    assert not group.supports_protocols("consumer", ["range"])
    assert not group.supports_protocols("connect", ["roundrobin"])
    assert group.select_protocol() == "roundrobin"
    group.remove("b")
    assert group.supports_protocols("consumer", ["range"])
    assert group.select_protocol() == "range"
    group.remove("a")
    assert group.leader_id is None
    # Still typed "consumer" until someone new joins an empty group.
    assert group.protocol_type == "consumer"


def test_ties_between_protocols_go_to_the_leaders_preference():
    group = Group("g")
    group.add(member("leader", "roundrobin", "range"))
    group.add(member("other", "range", "roundrobin"))
    assert group.select_protocol() == "roundrobin"


def test_replacing_a_static_member_moves_leadership_and_fences_the_old_id():
    group = Group("g")
    group.add(member("old", "range", instance="i"))
    group.add(member("b", "range"))
    group.replace_static_member("i", "old", "new")
    assert group.leader_id == "new"
    assert set(group.members) == {"new", "b"}
    assert group.is_static_member_fenced("i", "old")
    assert not group.is_static_member_fenced("i", "new")
    assert not group.is_static_member_fenced(None, "old")
