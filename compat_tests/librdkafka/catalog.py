"""The suite's test table (tests/test.c) and what each test needs from its environment.

Flags, minimum broker versions and scenarios come from the table itself. What a test
needs beyond one plain broker (SASL, SSL, transactions, Kafka's Java tools, socket
emulation, several brokers) is found by scanning the code reachable from the test's
main function within its source file; a few needs that no scan can see are listed in
KNOWN_NEEDS with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FLAG_BITS = {"TEST_F_LOCAL": "local", "TEST_F_KNOWN_ISSUE": "known_issue",
             "TEST_F_MANUAL": "manual", "TEST_F_SOCKEM": "sockem"}
# Defined as 0 on Linux (they mark issues on other platforms only).
PLATFORM_ZERO_FLAGS = {"TEST_F_KNOWN_ISSUE_WIN32", "TEST_F_KNOWN_ISSUE_OSX", "0"}

# Needs that decide whether a test belongs to the single-broker target set.
EXCLUDING_NEEDS = ("sasl", "ssl", "transactions", "java", "sockem", "multi_broker")

NEED_PATTERNS: dict[str, re.Pattern[str]] = {
    # Setting a property, not reading it: many tests read sasl.* only to skip themselves.
    "sasl": re.compile(r'conf_set\s*\(\s*\w+\s*,\s*"sasl\.[\w.]+"|test_check_builtin\("sasl'),
    "ssl": re.compile(r'conf_set\s*\(\s*\w+\s*,\s*(?:"ssl\.[\w.]+"|"security\.protocol",\s*"(?:SSL|SASL_SSL)")'
                      r'|test_check_builtin\("ssl"', re.IGNORECASE),
    "transactions": re.compile(r"init_transactions|begin_transaction|\"transactional\.id\""),
    "java": re.compile(r"test_kafka_cmd\s*\(|test_kafka_topics\s*\(|test_run_java\s*\("
                       r"|test_can_create_topics\s*\(\s*1"),
    "sockem": re.compile(r"test_socket_enable\s*\(|sockem_ctrl"),
    "mock_cluster": re.compile(r"test_mock_cluster_new\s*\(|rd_kafka_mock_cluster_new\s*\("
                               r"|\"test\.mock\.num\.brokers\""),
}

# Needs the scan cannot see, with the reason.
KNOWN_NEEDS: dict[str, dict[str, str]] = {
    "0101_fetch_from_follower": {
        "multi_broker": "reads from a follower replica in another rack: needs >= 2 brokers with broker.rack",
    },
}

_ENTRY_START = re.compile(r"_TEST\(\s*(\w+)\s*,")
_BRKVER = re.compile(r"TEST_BRKVER\((\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)")
_BLOCK_HEAD = re.compile(r"^[A-Za-z_][^;]*$")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(slots=True)
class SuiteTest:
    name: str
    number: str
    flags: list[str]
    min_version: str | None
    scenario: str
    source: str | None = None
    needs: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return "local" in self.flags

    def exclusion_reasons(self) -> list[str]:
        """Why this test is outside the single-broker target set (empty: inside)."""
        reasons: list[str] = [f for f in ("local", "known_issue", "manual") if f in self.flags]
        if "mock_cluster" in self.needs:
            reasons.append("mock_cluster")
        if self.scenario != "default" and "default" not in self.scenario.split(","):
            reasons.append(f"scenario:{self.scenario}")
        reasons.extend(n for n in EXCLUDING_NEEDS if n in self.needs)
        return reasons

    @property
    def in_target(self) -> bool:
        return not self.exclusion_reasons()


_LEXEME = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.DOTALL)


def _strip_comments(text: str) -> str:
    """Drop comments (keeping line breaks) but not string literals that contain '//'."""

    def keep_strings(match: re.Match[str]) -> str:
        lexeme = match.group(0)
        if lexeme[0] in "\"'":
            return lexeme
        return "\n" * lexeme.count("\n")

    return _LEXEME.sub(keep_strings, text)


def _table_text(test_c: str) -> str:
    start = test_c.index("struct test tests[] = {")
    end = test_c.index("{NULL}};", start)
    return test_c[start:end]


def _split_entries(table: str) -> list[str]:
    entries = []
    for match in _ENTRY_START.finditer(table):
        depth, i = 0, match.start() + len("_TEST")
        while i < len(table):
            if table[i] == "(":
                depth += 1
            elif table[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        entries.append(table[match.start():i + 1])
    return entries


def _version_macros(headers: list[str]) -> dict[str, str]:
    macros = {}
    for text in headers:
        for m in re.finditer(r"#define\s+(TEST_BRKVER_\w+)\s+TEST_BRKVER\((\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)", text):
            macros[m.group(1)] = ".".join(m.group(i) for i in range(2, 6))
    return macros


def parse_table(test_c: str, version_macros: dict[str, str]) -> list[SuiteTest]:
    tests = []
    for entry in _split_entries(_table_text(_strip_comments(test_c))):
        body = entry[entry.index("(") + 1:-1]
        name, _, rest = body.partition(",")
        flag_expr = rest.split(",", 1)[0]
        flags = []
        for token in (t.strip() for t in flag_expr.split("|")):
            if token in FLAG_BITS:
                flags.append(FLAG_BITS[token])
            elif token not in PLATFORM_ZERO_FLAGS:
                raise ValueError(f"unknown flag {token!r} for test {name}")
        version = _BRKVER.search(rest)
        min_version = ".".join(version.groups()) if version else None
        for macro, value in version_macros.items():
            if re.search(rf"\b{macro}\b", rest):
                min_version = value
        scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', rest)
        tests.append(SuiteTest(name=name.strip(), number=name.strip()[:4], flags=flags,
                               min_version=min_version,
                               scenario=scenario.group(1) if scenario else "default"))
    return tests


def top_level_blocks(source: str) -> dict[str, str]:
    """Name -> text of each top-level function, class or struct in a C/C++ file.

    The suite is clang-formatted: top-level definitions start at column 0 and their
    closing brace is the next line that starts with '}'.
    """
    blocks: dict[str, str] = {}
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line or line[0] in " \t#}" or not _BLOCK_HEAD.match(line) or line.startswith("extern \"C\""):
            i += 1
            continue
        j = i
        while j < len(lines) and "{" not in lines[j] and not lines[j].rstrip().endswith(";"):
            j += 1
        if j >= len(lines) or "{" not in lines[j]:
            i = j + 1
            continue
        header = " ".join(lines[i:j + 1]).split("{", 1)[0]
        k = j
        while k < len(lines) and not (k > j and lines[k].startswith("}")) and not (
                k == j and lines[k].rstrip().endswith("}") and lines[k].count("{") == lines[k].count("}")):
            k += 1
        name_match = re.search(r"\b(?:class|struct)\s+(\w+)", header) if "(" not in header else None
        if name_match is None:
            call = re.search(r"(\w+)\s*\(", header)
            name_match = call
        if name_match:
            blocks[name_match.group(1)] = "\n".join(lines[i:k + 1])
        i = k + 1
    return blocks


def reachable_code(source: str, entry: str) -> str:
    """The text of entry and of every top-level block it reaches within the file."""
    blocks = top_level_blocks(_strip_comments(source))
    if entry not in blocks:
        raise ValueError(f"{entry} is not defined at top level")
    seen, todo = {entry}, [entry]
    while todo:
        for ident in set(_IDENT.findall(blocks[todo.pop()])):
            if ident in blocks and ident not in seen:
                seen.add(ident)
                todo.append(ident)
    return "\n".join(blocks[name] for name in sorted(seen))


def scan_needs(code: str) -> dict[str, str]:
    needs = {}
    for need, pattern in NEED_PATTERNS.items():
        match = pattern.search(code)
        if match:
            needs[need] = f"uses {match.group(0).strip()}"
    return needs


def load_catalog(tests_dir: Path) -> list[SuiteTest]:
    """Every test of the suite with its flags and needs."""
    test_c = (tests_dir / "test.c").read_text()
    headers = [(tests_dir / h).read_text() for h in ("test.h", "testshared.h")]
    tests = parse_table(test_c, _version_macros(headers))
    sources = {p: p.read_text(errors="replace") for p in sorted(tests_dir.glob("[0-9]*-*.c*"))}
    for test in tests:
        entry = f"main_{test.name}"
        for path, text in sources.items():
            if re.search(rf"\b{entry}\s*\(\s*int", text):
                test.source = path.name
                test.needs = scan_needs(reachable_code(text, entry))
                break
        if "sockem" in test.flags:
            test.needs.setdefault("sockem", "flagged TEST_F_SOCKEM")
        test.needs.update(KNOWN_NEEDS.get(test.name, {}))
    return tests
