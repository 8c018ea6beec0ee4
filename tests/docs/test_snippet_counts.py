"""The count of documentation blocks for the closing note, and its consistency."""

from __future__ import annotations

from tests.docs.count import KINDS, NOT_RUNNABLE, count_all, table
from tests.docs.pages import page_paths, read_page


def test_every_block_is_counted_once_and_every_skip_says_why(capsys: object) -> None:
    counts = count_all()
    for count in counts:
        page = read_page(count.path)
        assert sum(count.kinds[k] for k in KINDS) == len(page.runnable)
        assert len(count.skipped) == count.kinds[NOT_RUNNABLE]
        assert all(reason for _, reason in count.skipped)
    assert [c.path for c in counts] == page_paths()
    print(table(counts))
