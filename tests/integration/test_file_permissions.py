"""SQLite database files are readable by their owner only, unless asked otherwise.

Job arguments hold secrets (API tokens, addresses). A database file jobq creates
is 0600, and SQLite gives its ``-wal`` and ``-shm`` files the main file's
permissions; before, all three were 0644 under the usual umask and any local
user could read the jobs. Run as root, a child process that dropped to
``nobody`` tries to read them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, StorageError
from jobq.storage import SQLiteStorage
from tests.helpers import run_child

SECRET = "Bearer s3cret-token"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """The process umask set to ``mask`` for a moment (the tests run one at a time)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(db: Path) -> dict[str, str]:
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return {f.name: oct(f.stat().st_mode & 0o777) for f in files}


def _write_secret(queue: DurableQueue) -> None:
    queue.task("call")(lambda headers: None)
    queue.enqueue("call", {"Authorization": SECRET})


@pytest.mark.parametrize("driver", ["sqlite3", "apsw"])
def test_new_database_files_are_private_to_their_owner(shared_dir: Path, driver: str) -> None:
    db = shared_dir / "jobs.db"
    with umask(0o022):  # the usual default, under which SQLite made 0644 files
        queue = DurableQueue(db, driver=driver)  # type: ignore[arg-type]
    with contextlib.closing(queue):
        _write_secret(queue)
        assert _modes(db) == {"jobs.db": "0o600", "jobs.db-wal": "0o600", "jobs.db-shm": "0o600"}
        if os.geteuid() != 0:
            return  # only root can become another user to try reading them
        files = [str(db), f"{db}-wal", f"{db}-shm"]
        answers = shared_dir / "answers"
        answers.mkdir()
        answers.chmod(0o777)  # where nobody writes its answer
        result = run_child("peek", answers / "peek.json", files=files, as_nobody=True)
    assert result["uid"] != 0
    got = result["got"]
    assert [got[name] for name in files] == ["PermissionError"] * 3, got
    assert SECRET not in got["payloads"], got
    assert "unable to open" in got["payloads"], got


def test_file_mode_gives_other_permissions_whatever_the_umask(tmp_path: Path) -> None:
    db = tmp_path / "group.db"
    with umask(0o077):
        storage = SQLiteStorage(db, file_mode=0o660)
    with contextlib.closing(DurableQueue(storage)) as queue:
        _write_secret(queue)
        assert set(_modes(db).values()) == {"0o660"}


def test_an_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    db.touch()
    db.chmod(0o640)  # chosen by the user, e.g. for a group of readers
    with contextlib.closing(DurableQueue(db)) as queue:
        _write_secret(queue)
        assert set(_modes(db).values()) == {"0o640"}


@pytest.mark.parametrize(
    ("file_mode", "message"),
    [
        (0o400, "must let the owner read and write"),
        (0o1600, "permission bits from 0o000 to 0o777, got 896"),
        (True, "permission bits"),
        ("0600", "permission bits"),
    ],
)
def test_bad_file_modes_are_refused_before_any_file_is_made(
    tmp_path: Path, file_mode: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SQLiteStorage(tmp_path / "x.db", file_mode=file_mode)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("driver", ["sqlite3", "apsw"])
def test_missing_folders_are_created_for_their_owner_only(tmp_path: Path, driver: str) -> None:
    db = tmp_path / "instance" / "data" / "jobs.db"
    with umask(0o022), contextlib.closing(DurableQueue(db, driver=driver)) as queue:  # type: ignore[arg-type]
        _write_secret(queue)
    assert oct((tmp_path / "instance").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "instance" / "data").stat().st_mode & 0o777) == "0o700"
    assert oct(db.stat().st_mode & 0o777) == "0o600"


def test_a_relative_path_in_a_fresh_folder_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with contextlib.closing(DurableQueue("instance/jobs.db")) as queue:
        _write_secret(queue)
    assert (tmp_path / "instance" / "jobs.db").is_file()
    assert oct((tmp_path / "instance").stat().st_mode & 0o777) == "0o700"


def test_created_folders_follow_the_file_mode(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "jobs.db"
    with umask(0o077), contextlib.closing(SQLiteStorage(db, file_mode=0o660)):
        pass
    assert oct((tmp_path / "shared").stat().st_mode & 0o777) == "0o770"


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    folder.mkdir()
    folder.chmod(0o755)
    with contextlib.closing(DurableQueue(folder / "sub" / "jobs.db")):
        pass
    assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert oct((folder / "sub").stat().st_mode & 0o777) == "0o700"


def test_a_folder_that_cannot_be_made_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "instance").write_text("a file where the folder should be")
    db = tmp_path / "instance" / "jobs.db"
    with pytest.raises(StorageError, match="is not a folder"):
        DurableQueue(db)
    blocked = tmp_path / "blocked"
    blocked.mkdir(0o500)
    if os.geteuid() == 0:
        return  # root may write anywhere
    with pytest.raises(StorageError, match=f"cannot create the folder '{blocked}/sub'"):
        DurableQueue(blocked / "sub" / "jobs.db")
