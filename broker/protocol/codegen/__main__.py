"""Command line: regenerate the codec's schemas and docs/protocol.md, or check them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.protocol.codegen import DEFAULT_SPEC_DIR, REPO, render, stale_files, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.protocol.codegen", description=__doc__)
    parser.add_argument(
        "--spec-dir",
        type=Path,
        default=DEFAULT_SPEC_DIR,
        help=f"folder of Kafka's *.json message specs (default: {DEFAULT_SPEC_DIR})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO,
        help="repository root to write into (default: this checkout)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the committed output is stale",
    )
    args = parser.parse_args(argv)
    rendered = render(args.spec_dir)
    if args.check:
        stale = stale_files(rendered, args.out)
        for p in stale:
            print(f"stale: {p}", file=sys.stderr)
        return 1 if stale else 0
    for p in write(rendered, args.out):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
