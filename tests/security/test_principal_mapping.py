"""ssl.principal.mapping.rules: parsing (with Kafka's documented examples and its
splitting rules) and mapping a client certificate to a principal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tls_material import CertificateAuthority

from broker.config import ConfigError
from broker.security.principal_mapping import (
    ANONYMOUS,
    MappingRulesError,
    NoMatchingRule,
    PrincipalMapper,
    parse_rules,
    principal_from_certificate,
)
from broker.security.sasl_mechanism import AuthenticationFailed

pytestmark = pytest.mark.unit

# The example of Kafka's security documentation, one rule a line as it is printed there.
KAFKA_DOCS_RULES = (
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n"
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\n"
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\n"
    "DEFAULT"
)


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        # The two translations the documentation states.
        ("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "serviceuser"),
        ("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "adminuser@admin"),
        # The third rule: a CN anywhere, lower-cased.
        ("OU=x,cN=Duke.Two,O=Sun", "duke.two"),
        # No CN at all: DEFAULT, the subject unchanged.
        ("OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US"),
    ],
)
def test_kafka_documented_rules(subject: str, name: str) -> None:
    assert PrincipalMapper.parse(KAFKA_DOCS_RULES).name_for(subject) == name


def test_rules_are_tried_in_order_and_u_upper_cases() -> None:
    mapper = PrincipalMapper.parse(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, "
        "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, "
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT"
    )
    assert mapper.name_for("CN=Duke,OU=ServiceUsers,O=Org,C=US") == "duke"
    assert mapper.name_for("cn=duke,ou=sme,dc=mycp,dc=com") == "DUKE@SME"
    assert mapper.name_for("cN=duke,OU=JavaSoft,O=Sun Microsystems") == "DUKE"


def test_without_a_matching_rule_the_client_is_refused() -> None:
    mapper = PrincipalMapper.parse("RULE:^CN=(.*?),OU=ServiceUsers$/$1/")
    with pytest.raises(NoMatchingRule, match=re.escape("no ssl.principal.mapping.rules rule")):
        mapper.name_for("CN=alice,OU=Admins")
    assert issubclass(NoMatchingRule, AuthenticationFailed)
    with pytest.raises(NoMatchingRule):
        PrincipalMapper.parse("").name_for("CN=alice")


def test_the_pattern_must_match_the_whole_subject() -> None:
    mapper = PrincipalMapper.parse("RULE:CN=([a-z]+)/$1/")
    assert mapper.name_for("CN=alice") == "alice"
    with pytest.raises(NoMatchingRule):
        mapper.name_for("CN=alice,O=Acme")


def test_an_empty_name_refuses_the_client() -> None:
    with pytest.raises(NoMatchingRule, match="empty name"):
        PrincipalMapper.parse("RULE:CN=([a-z]*),O=.*//").name_for("CN=,O=Acme")


def test_replacement_groups_as_java_reads_them() -> None:
    # $12 is group 1 then "2" when the pattern has fewer than 12 groups.
    assert PrincipalMapper.parse("RULE:CN=(.*)/$12/").name_for("CN=a") == "a2"
    eleven = "".join(f"({c})" for c in "abcdefghijk")
    assert PrincipalMapper.parse(f"RULE:{eleven}/$11-$1/").name_for("abcdefghijk") == "k-a"
    assert PrincipalMapper.parse("RULE:CN=(?P<user>.*)/${user}!/").name_for("CN=bo") == "bo!"
    # A backslash makes $ and / literal; an unmatched optional group is empty.
    assert PrincipalMapper.parse(r"RULE:CN=(.*)/\$1\/$1/").name_for("CN=x") == "$1/x"
    assert PrincipalMapper.parse("RULE:CN=(a)?(.*)/[$1]$2/").name_for("CN=zz") == "[]zz"


def test_escaped_slash_and_comma_in_a_pattern() -> None:
    mapper = PrincipalMapper.parse(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT")
    assert mapper.name_for(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz") == r"Tkac\, Adam"
    assert PrincipalMapper.parse(r"RULE:CN=a\/b/ok/").name_for("CN=a/b") == "ok"


def test_an_empty_match_at_the_end_is_replaced_too_as_in_java() -> None:
    # Java's "abc".replaceAll("(.*)", "<$1>") is "<abc><>"; Kafka applies replaceAll.
    assert PrincipalMapper.parse("RULE:(.*)/<$1>/").name_for("abc") == "<abc><>"


@pytest.mark.parametrize(
    ("text", "rules"),
    [
        ("", []),
        ("DEFAULT", ["DEFAULT"]),
        ("RULE://", ["RULE://"]),
        ("RULE:/.*/", ["RULE:/.*/"]),
        ("RULE:/.*/L", ["RULE:/.*/L"]),
        ("  RULE:// ,  DEFAULT  ", ["RULE://", "DEFAULT"]),
        ("  RULE:   /     / ,  DEFAULT  ", ["RULE:   /     /", "DEFAULT"]),
        (",   , , ,      , , ,   ", []),
        (",,RULE://,,,DEFAULT,,", ["RULE://", "DEFAULT"]),
        ("RULE:a/b/\nRULE:c/d/U\n\nDEFAULT\n", ["RULE:a/b/", "RULE:c/d/U", "DEFAULT"]),
        (r"RULE:\**\/+/*/L,RULE:\/*\**/**/", [r"RULE:\**\/+/*/L", r"RULE:\/*\**/**/"]),
        # Parts end at an unescaped slash, so commas and "RULE:" may sit inside them.
        (
            r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,"
            "RULE:, DEFAULT, /DEFAULT/,DEFAULT",
            [
                r"RULE:,RULE:,/,RULE:,\//U",
                "RULE:,/RULE:,/",
                "RULE:,RULE:,/L,RULE:,/L",
                "RULE:, DEFAULT, /DEFAULT/",
                "DEFAULT",
            ],
        ),
    ],
)
def test_splitting_as_kafka_splits(text: str, rules: list[str]) -> None:
    assert [str(rule) for rule in parse_rules(text)] == rules


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("default", "expected RULE:"),
        ("DEFAUL", "expected RULE:"),
        ("DEFAULT/L", "unexpected '/L'"),
        ("DEFAULT/U", "unexpected '/U'"),
        ("RULE:CN=(.*?),OU=ServiceUsers.*/$1", "replacement has no closing"),
        ("rule:^CN=(.*?),OU=ServiceUsers.*$/$1/", "expected RULE:"),
        ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U", "unexpected '/U'"),
        ("RULE:^CN=(.*?),OU=ServiceUsers.*$/L", "replacement has no closing"),
        ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/LU", "unexpected 'U'"),
        ("RULE:^CN=(.*?$/$1/", "missing )"),
        ("RULE:CN=(.*)/$2/", "group 2; the pattern has 1"),
        ("RULE:CN=(.*)/$x/", "not followed by a group"),
        ("RULE:CN=(.*)/${user}/", "names no group"),
        ("RULE:CN=(.*)/a\\", "replacement has no closing"),
        ("DEFAULT,RULE:noslash", "pattern has no closing"),
    ],
)
def test_malformed_rules_are_refused_when_read(text: str, why: str) -> None:
    with pytest.raises(MappingRulesError, match=re.escape(why)) as caught:
        parse_rules(text)
    assert isinstance(caught.value, ConfigError)
    assert "\n" not in str(caught.value)


def test_the_principal_of_a_client_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path, "ca", "CN=ca")
    issued = ca.issue("alice", "CN=alice,OU=ServiceUsers,O=Acme,C=US")
    der = issued.certificate.public_bytes(Encoding.DER)
    assert principal_from_certificate(der, "DEFAULT") == "User:CN=alice,OU=ServiceUsers,O=Acme,C=US"
    assert principal_from_certificate(issued.certificate, KAFKA_DOCS_RULES) == "User:alice"
    with pytest.raises(NoMatchingRule):
        principal_from_certificate(der, "RULE:^CN=(.*),OU=Admins.*$/$1/")
    with pytest.raises(NoMatchingRule, match="unreadable"):
        principal_from_certificate(b"not a certificate", "DEFAULT")


def test_no_certificate_is_anonymous() -> None:
    assert principal_from_certificate(None, "RULE:x/y/") == ANONYMOUS == "User:ANONYMOUS"
