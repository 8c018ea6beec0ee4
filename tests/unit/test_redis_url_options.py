"""jobq's options in a Redis URL (``?prefix=...&durability=...``), taken out before
redis-py reads the URL; and what opening a Redis URL says without redis-py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobq.errors import ConfigurationError
from jobq.storage import open_storage
from tests.helpers import ROOT

pytest.importorskip("redis")

from jobq.storage.redis.options import split_url


def test_jobq_options_are_taken_out_and_redis_py_options_kept_as_written() -> None:
    url = "redis://:s%40cret@cache:6379/2?socket_timeout=5&prefix=shop%3Ajobs%3A&durability=refuse"
    assert split_url(url) == (
        "redis://:s%40cret@cache:6379/2?socket_timeout=5",
        {"prefix": "shop:jobs:", "durability": "refuse"},
    )


@pytest.mark.parametrize(
    ("url", "clean", "options"),
    [
        ("redis://cache:6379/0", "redis://cache:6379/0", {}),
        ("redis://cache/0?prefix=a:", "redis://cache/0", {"prefix": "a:"}),
        (
            "rediss://cache/0?durability=ignore&ssl_cert_reqs=none",
            "rediss://cache/0?ssl_cert_reqs=none",
            {"durability": "ignore"},
        ),
        ("unix:///run/redis.sock?db=1&prefix=x", "unix:///run/redis.sock?db=1", {"prefix": "x"}),
        ("redis://cache/0?prefix=", "redis://cache/0", {"prefix": ""}),  # refused later: empty
        ("redis://cache/0?prefix=a+b", "redis://cache/0", {"prefix": "a b"}),
        ("redis://cache/0?", "redis://cache/0", {}),
    ],
)
def test_split_url(url: str, clean: str, options: dict[str, str]) -> None:
    assert split_url(url) == (clean, options)


def test_an_option_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'prefix' twice"):
        split_url("redis://cache/0?prefix=a:&prefix=b:")


def test_an_unsupported_url_names_every_kind_of_location() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_storage("mongodb://db/jobs")
    for kind in ("SQLite file path", "sqlite:///", "postgresql://", "redis://", "rediss://"):
        assert kind in str(caught.value)


def test_a_redis_url_without_the_redis_package_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from jobq.storage import open_storage\n"
        "try:\n"
        "    open_storage('redis://127.0.0.1:1/0')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'jobq[redis]'" in done.stdout


def test_the_all_extra_installs_redis() -> None:
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    extras = setup["options.extras_require"]
    assert "redis" in extras["all"].split("[", 1)[1].split("]")[0].split(",")
    assert "redis" in extras["redis"]
