"""Run one documentation page's blocks and keep its folder, to write or debug a page.

    python -m tests.docs.run docs/handlers/email.md            # stop at the first failure
    python -m tests.docs.run docs/handlers/email.md --keep-going

Prints the page's output, every failing block as ``page:line: what``, and the
folder the blocks ran in (kept for a look). Exit status 1 when a block failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docs.pages import read_page
from tests.docs.runner import PageFailed, run_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs.run", description=__doc__)
    parser.add_argument("page", help="a page's path, e.g. README.md or docs/tutorial.md")
    parser.add_argument("--keep-going", action="store_true", help="run the blocks after a failure")
    args = parser.parse_args(argv)
    workspace = Path(tempfile.mkdtemp(prefix="jobq-docs-"))
    try:
        result = run_page(read_page(args.page), workspace, keep_going=args.keep_going)
    except PageFailed as failed:
        print(failed)
        print(f"\nthe blocks ran in {workspace / 'page'}")
        return 1
    except pytest.skip.Exception as skipped:
        print(f"skipped: {skipped}")
        return 0
    print(result.output)
    print(f"{args.page}: every block ran; they ran in {workspace / 'page'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
