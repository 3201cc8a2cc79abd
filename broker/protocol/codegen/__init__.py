"""Generator of the wire codec's schemas from Kafka's JSON message specs.

Run ``python -m broker.protocol.codegen [--spec-dir DIR] [--check]``.
"""

from __future__ import annotations

from pathlib import Path

from broker.protocol.codegen.docs import load_served, protocol_markdown
from broker.protocol.codegen.emit import index_source, module_name, module_source
from broker.protocol.codegen.spec import load_all

REPO = Path(__file__).resolve().parents[3]
DEFAULT_SPEC_DIR = REPO.parent / "shared" / "kafka-protocol" / "message"
GENERATED_DIR = Path("broker/protocol/generated")
DOCS_FILE = Path("docs/protocol.md")


def render(spec_dir: Path, repo: Path = REPO) -> dict[Path, str]:
    """Every generated file, as repo-relative path -> content."""
    messages = load_all(spec_dir)
    if not messages:
        raise SystemExit(f"no *.json message specs in {spec_dir}")
    out: dict[Path, str] = {}
    for msg in messages:
        out[GENERATED_DIR / f"{module_name(msg.name)}.py"] = module_source(msg)
    out[GENERATED_DIR / "__init__.py"] = index_source(messages)
    out[DOCS_FILE] = protocol_markdown(messages, load_served(repo))
    return out


def stale_files(rendered: dict[Path, str], root: Path) -> list[Path]:
    """Files under root that differ from rendered, plus generated files nobody renders."""
    stale = [
        p
        for p, text in rendered.items()
        if not (root / p).exists() or (root / p).read_text(encoding="utf-8") != text
    ]
    gen = root / GENERATED_DIR
    if gen.exists():
        stale += [
            p.relative_to(root) for p in gen.glob("*.py") if p.relative_to(root) not in rendered
        ]
    return sorted(stale)


def write(rendered: dict[Path, str], root: Path) -> list[Path]:
    changed = stale_files(rendered, root)
    for p in changed:
        target = root / p
        if p in rendered:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered[p], encoding="utf-8")
        else:
            target.unlink()
    return changed
