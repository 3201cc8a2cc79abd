"""Kafka's `ssl.principal.mapping.rules`: from a client certificate's subject to a
principal name.

The setting is a list of rules, separated by commas or newlines, tried in order:

    RULE:<pattern>/<replacement>/[L|U]   the pattern must match the whole subject; the
                                         name is the replacement ($1, ${name} refer to
                                         groups), lower- or upper-cased with L or U
    DEFAULT                              the subject unchanged

The first rule whose pattern matches decides; when none does, the client is refused
(Kafka fails the authentication too). Inside a pattern or a replacement a backslash
escapes the next character, so `\\/` is a slash that does not end the part; patterns and
replacements may otherwise hold commas, spaces, even the text "RULE:".

Patterns are Python regular expressions, which read the constructs such rules use
(classes, groups, lazy and possessive quantifiers, anchors) as Java's do; a pattern
Python cannot compile is refused when the setting is read, not at the first login.
Replacements follow Java's Matcher rules: `$n` takes as many digits as name an existing
group, `${name}` a named group (written `(?P<name>...)` in the pattern), `\\x` is x.

Two choices where Kafka's behaviour is not a good example: a replacement that names a
group the pattern lacks is refused with the rules (Kafka throws at each login), and a
rule that maps a subject to the empty name refuses the client rather than authenticate
"User:".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from broker.config import ConfigError
from broker.security.distinguished_name import MalformedName, subject_name
from broker.security.sasl_mechanism import AuthenticationFailed

DEFAULT_RULES = "DEFAULT"
# Kafka's principal for a TLS client that sent no certificate (client auth "requested"
# or "none").
ANONYMOUS = "User:ANONYMOUS"


class MappingRulesError(ConfigError):
    """ssl.principal.mapping.rules cannot be parsed, with where and why."""


class NoMatchingRule(AuthenticationFailed):
    """No rule maps this subject: the client is refused."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; `pattern` None is DEFAULT."""

    pattern: re.Pattern[str] | None
    replacement: str = ""
    case: str = ""  # "", "L" or "U"
    expand: Callable[[re.Match[str]], str] | None = field(default=None, repr=False, compare=False)

    def apply(self, subject: str) -> str | None:
        """The mapped name, or None when the rule does not match."""
        if self.pattern is None:
            return subject
        if self.pattern.fullmatch(subject) is None:
            return None
        assert self.expand is not None
        # As Java's replaceAll after matches(): the pattern may match again at the end
        # of the subject (an empty match), and that match is replaced too.
        name = self.pattern.sub(self.expand, subject)
        if self.case == "L":
            return name.lower()
        if self.case == "U":
            return name.upper()
        return name

    def __str__(self) -> str:
        if self.pattern is None:
            return "DEFAULT"
        return f"RULE:{self.pattern.pattern}/{self.replacement}/{self.case}"


@dataclass(frozen=True, slots=True)
class PrincipalMapper:
    """Parsed rules; build once from the setting with `PrincipalMapper.parse`."""

    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, text: str) -> PrincipalMapper:
        return cls(tuple(parse_rules(text)))

    def name_for(self, subject: str) -> str:
        """The short name for an RFC 2253 subject. Raises NoMatchingRule."""
        for rule in self.rules:
            name = rule.apply(subject)
            if name is None:
                continue
            if not name:
                raise NoMatchingRule(f"rule {rule} maps {subject!r} to an empty name")
            return name
        raise NoMatchingRule(f"no ssl.principal.mapping.rules rule matches {subject!r}")


def principal_from_certificate(
    certificate: bytes | x509.Certificate | None, rules: PrincipalMapper | str
) -> str:
    """The Kafka principal ("User:<name>") of a TLS client.

    `certificate` is the peer's certificate as DER (`getpeercert(binary_form=True)`),
    parsed, or None when the client sent none (then "User:ANONYMOUS", as Kafka). The
    dict form of getpeercert() is not taken: it has lost the encodings the name is
    written from. Raises NoMatchingRule (an AuthenticationFailed)."""
    if certificate is None:
        return ANONYMOUS
    mapper = rules if isinstance(rules, PrincipalMapper) else PrincipalMapper.parse(rules)
    try:
        subject = subject_name(certificate)
    except MalformedName as exc:
        raise NoMatchingRule(f"unreadable client certificate subject: {exc}") from exc
    return f"User:{mapper.name_for(subject)}"


def parse_rules(text: str) -> list[Rule]:
    """Parses the setting. Empty entries (",,") are skipped, as Kafka does. Raises
    MappingRulesError naming the rule's position."""
    rules: list[Rule] = []
    pos = 0
    while True:
        pos = _skip_separators(text, pos)
        if pos == len(text):
            return rules
        start = pos
        if text.startswith("DEFAULT", pos):
            rule, pos = Rule(None), pos + len("DEFAULT")
        elif text.startswith("RULE:", pos):
            rule, pos = _parse_rule(text, pos + len("RULE:"), start)
        else:
            raise _error(text, start, "expected RULE:pattern/replacement/[LU] or DEFAULT")
        while pos < len(text) and text[pos] in " \t\r":
            pos += 1
        if pos < len(text) and text[pos] not in ",\n":
            raise _error(text, start, f"unexpected {text[pos : pos + 10]!r} after the rule")
        rules.append(rule)


def _skip_separators(text: str, pos: int) -> int:
    while pos < len(text) and (text[pos] in ",\n" or text[pos].isspace()):
        pos += 1
    return pos


def _parse_rule(text: str, pos: int, start: int) -> tuple[Rule, int]:
    pattern_text, pos = _until_slash(text, pos, start, "pattern")
    replacement, pos = _until_slash(text, pos, start, "replacement")
    case = ""
    if pos < len(text) and text[pos] in "LU":
        case, pos = text[pos], pos + 1
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise _error(text, start, f"pattern {pattern_text!r}: {exc}") from None
    expand = _compile_replacement(replacement, pattern, lambda why: _error(text, start, why))
    return Rule(pattern, replacement, case, expand), pos


def _until_slash(text: str, pos: int, start: int, part: str) -> tuple[str, int]:
    """The text up to the next unescaped "/", and the position after it."""
    begin = pos
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == "/":
            return text[begin:pos], pos + 1
        else:
            pos += 1
    raise _error(text, start, f"the {part} has no closing '/'")


@dataclass(frozen=True, slots=True)
class _Group:
    ref: int | str  # number or name


def _compile_replacement(
    replacement: str,
    pattern: re.Pattern[str],
    error: Callable[[str], MappingRulesError],
) -> Callable[[re.Match[str]], str]:
    """Java's replacement syntax, checked against the pattern's groups now."""
    parts: list[str | _Group] = []
    literal: list[str] = []
    pos = 0
    while pos < len(replacement):
        char = replacement[pos]
        if char == "\\":
            if pos + 1 == len(replacement):
                raise error("the replacement ends with a lone '\\'")
            literal.append(replacement[pos + 1])
            pos += 2
        elif char == "$":
            parts.append("".join(literal))
            literal = []
            group, pos = _group_reference(replacement, pos + 1, pattern, error)
            parts.append(group)
        else:
            literal.append(char)
            pos += 1
    parts.append("".join(literal))
    pieces = [p for p in parts if p != ""]

    def expand(match: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else (match.group(p.ref) or "") for p in pieces)

    return expand


def _group_reference(
    text: str,
    pos: int,
    pattern: re.Pattern[str],
    error: Callable[[str], MappingRulesError],
) -> tuple[_Group, int]:
    if text.startswith("{", pos):
        end = text.find("}", pos)
        name = text[pos + 1 : end] if end != -1 else ""
        if not name or name not in pattern.groupindex:
            raise error(f"the replacement names no group of the pattern at '${text[pos:]}'")
        return _Group(name), end + 1
    if pos == len(text) or not text[pos].isdigit():
        raise error("'$' in the replacement is not followed by a group number or {name}")
    number = int(text[pos])
    if number > pattern.groups:
        raise error(f"the replacement refers to group {number}; the pattern has {pattern.groups}")
    pos += 1
    # Further digits belong to the reference while they still name a group (Java).
    while (
        pos < len(text) and text[pos].isdigit() and number * 10 + int(text[pos]) <= pattern.groups
    ):
        number = number * 10 + int(text[pos])
        pos += 1
    return _Group(number), pos


def _error(text: str, start: int, why: str) -> MappingRulesError:
    rule = text[start:].split("\n", 1)[0][:60]
    return MappingRulesError(f"ssl.principal.mapping.rules: {why} (in {rule!r})")
