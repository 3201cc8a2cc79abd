"""The committed generated files are exactly what the generator writes from the specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broker.protocol.codegen import DEFAULT_SPEC_DIR, GENERATED_DIR, render, stale_files, write
from broker.protocol.codegen.emit import GENERATED_MARK

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO.parent / "shared" / "kafka-protocol" / "message"


def test_spec_dir_default_is_the_shared_specs():
    assert DEFAULT_SPEC_DIR.resolve() == SPEC_DIR.resolve()
    assert len(list(SPEC_DIR.glob("*.json"))) > 150


def test_committed_output_is_fresh(tmp_path: Path):
    rendered = render(SPEC_DIR, REPO)
    write(rendered, tmp_path)
    for rel, text in rendered.items():
        fresh = (tmp_path / rel).read_text(encoding="utf-8")
        assert fresh == text
        committed = REPO / rel
        assert committed.exists(), f"{rel} is not committed; run python -m broker.protocol.codegen"
        assert committed.read_text(encoding="utf-8") == fresh, (
            f"{rel} is stale; run python -m broker.protocol.codegen"
        )
    assert stale_files(rendered, REPO) == []


def test_every_generated_module_is_marked(tmp_path: Path):
    for rel, text in render(SPEC_DIR, REPO).items():
        if rel.parent == GENERATED_DIR:
            assert text.startswith(GENERATED_MARK), rel


def test_check_flag_detects_a_stale_tree(tmp_path: Path):
    cmd = [
        sys.executable,
        "-m",
        "broker.protocol.codegen",
        "--spec-dir",
        str(SPEC_DIR),
        "--out",
        str(tmp_path),
    ]
    assert subprocess.run([*cmd, "--check"], cwd=REPO, capture_output=True).returncode == 1
    assert subprocess.run(cmd, cwd=REPO, capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], cwd=REPO, capture_output=True).returncode == 0
    victim = tmp_path / GENERATED_DIR / "fetch_request.py"
    victim.write_text(victim.read_text() + "# edited by hand\n")
    result = subprocess.run([*cmd, "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "fetch_request.py" in result.stderr


def test_served_column_comes_from_the_hook(tmp_path: Path):
    from broker.protocol.codegen.docs import SERVED_HOOK, load_served, protocol_markdown
    from broker.protocol.codegen.spec import load_all

    assert load_served(tmp_path) is None
    hook = tmp_path / SERVED_HOOK
    hook.parent.mkdir(parents=True)
    hook.write_text("SERVED = {0: (3, 9), 18: (0, 4)}\n")
    served = load_served(tmp_path)
    assert served == {0: (3, 9), 18: (0, 4)}
    page = protocol_markdown(load_all(SPEC_DIR), served)
    assert "| 0 | Produce | 0-11 | 9 | 3-9 |" in page
    assert "| 18 | ApiVersions | 0-4 | 3 | 0-4 |" in page
    assert "| 1 | Fetch | 0-17 | 12 | - |" in page
    assert "not yet" in protocol_markdown(load_all(SPEC_DIR), None)


def test_schemas_compile_once_and_warm_up_covers_both_directions():
    from broker.protocol import schema, warm_up

    assert warm_up([18]) == 2 * 5
    assert schema("ApiVersionsResponse", 4) is schema("ApiVersionsResponse", 4)
    # Versions whose wire format is identical share one compiled schema.
    assert schema("ProduceRequest", 10) is schema("ProduceRequest", 11)
