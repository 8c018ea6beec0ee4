"""The snippet runner itself: markers, one folder and interpreter per page, shell
blocks, fixtures, and failures that name the page and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.docs.pages import MarkerError, parse_page
from tests.docs.runner import VENV_BIN, PageFailed, run_page

FENCE = "```"


def page(text: str, path: str = "docs/example.md") -> str:
    return textwrap.dedent(text).replace("'''", FENCE)


def run(text: str, tmp_path: Path) -> str:
    return run_page(parse_page("docs/example.md", page(text)), tmp_path).output


def failure(text: str, tmp_path: Path) -> str:
    with pytest.raises(PageFailed) as failed:
        run(text, tmp_path)
    return str(failed.value)


# -- markers -------------------------------------------------------------------------------


def test_markers_attach_to_the_fence_after_them() -> None:
    parsed = parse_page(
        "docs/example.md",
        page(
            """\
            # Title

            <!-- snippet: fixtures smtp images -->
            <!-- snippet: setup
            user_ids = [1, 2]
            -->
            '''python
            print(user_ids)
            '''

            <!-- snippet: skip serves forever -->
            '''sh
            python3 dev.py demo
            '''

            '''yaml
            a: 1
            '''
            """
        ),
    )
    first, second, third = parsed.blocks
    assert (first.line, first.language, first.fixtures) == (7, "python", ("smtp", "images"))
    setup = first.marker("setup")
    assert setup is not None
    assert setup.argument == "user_ids = [1, 2]\n"
    assert not second.runs
    assert second.marker("skip").argument == "serves forever"  # type: ignore[union-attr]
    assert (third.language, third.runs) == ("yaml", False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- snippet: skip -->\n'''sh\nls\n'''\n", ":1: 'snippet: skip' needs a reason"),
        ("<!-- snippet: hide -->\n'''sh\nls\n'''\n", ":1: unknown snippet marker 'hide'"),
        ("<!--snippet skip x-->\n'''sh\nls\n'''\n", "docs/example.md:1: malformed snippet marker"),
        ("<!-- snippet: fixtures mysql -->\n'''sh\nls\n'''\n", "takes names among"),
        ("<!-- snippet: skip why -->\n\n'''sh\nls\n'''\n", "is not directly before a code fence"),
        ("<!-- snippet: skip why -->\n'''yaml\na: 1\n'''\n", "python, sh and bash blocks only"),
        ("<!-- snippet: background -->\n'''python\npass\n'''\n", "for shell blocks only"),
        ("<!-- snippet: wait-http example.com -->\n'''sh\nls\n'''\n", "one local URL"),
        ("<!-- snippet: expect-error -->\n'''sh\nls\n'''\n", "needs the text"),
        ("<!-- snippet: setup\nx = 1\n'''sh\nls\n'''\n", "never closed"),
        ("<!-- snippet: skip a -->\n<!-- snippet: skip b -->\n'''sh\nls\n'''\n", "given twice"),
    ],
)
def test_a_malformed_or_unknown_marker_fails_naming_page_and_line(text: str, message: str) -> None:
    with pytest.raises(MarkerError, match=r"^docs/example\.md:") as error:
        parse_page("docs/example.md", page(text))
    assert message in str(error.value)


# -- running -------------------------------------------------------------------------------


def test_blocks_share_one_interpreter_and_one_folder_with_the_venv_first_on_path(
    tmp_path: Path,
) -> None:
    output = run(
        """\
        '''python
        import os
        count = 1
        os.makedirs("instance")
        with open("instance/note.txt", "w") as f:
            f.write("from python")
        '''

        '''sh
        cat instance/note.txt; echo
        command -v python
        echo "from shell" > shell.txt
        '''

        '''python
        count += 1
        print("count", count, open("shell.txt").read().strip(), sorted(os.listdir(".")))
        '''
        """,
        tmp_path,
    )
    assert "from python" in output
    assert f"{VENV_BIN}/python" in output
    assert "count 2 from shell ['instance', 'shell.txt']" in output


def test_a_failing_block_is_named_by_page_and_line_and_stops_the_page(tmp_path: Path) -> None:
    message = failure(
        """\
        Some text.

        '''python
        x = 1
        y = x / 0
        '''

        '''sh
        echo never
        '''
        """,
        tmp_path,
    )
    assert message.startswith("docs/example.md:3: python block raised ZeroDivisionError")
    assert 'File "docs/example.md", line 5' in message
    assert "y = x / 0" in message
    assert "never" not in message


def test_a_failing_shell_block_is_named_by_page_and_line(tmp_path: Path) -> None:
    message = failure("'''bash\nfalse\necho after\n'''\n", tmp_path)
    assert message.startswith("docs/example.md:1: shell block exited with status 1")
    assert "after" not in message.split("---", 1)[1].replace("snippet", "")


def test_expect_error_needs_the_failure_and_its_text(tmp_path: Path) -> None:
    run(
        """\
        <!-- snippet: expect-error no such table -->
        '''python
        raise RuntimeError("no such table: jobs")
        '''

        <!-- snippet: expect-error jobq: error -->
        '''sh
        jobq stats --db missing.db
        '''
        """,
        tmp_path,
    )
    message = failure("<!-- snippet: expect-error boom -->\n'''python\npass\n'''\n", tmp_path / "b")
    assert "expected to fail with 'boom' but ran without error" in message


def test_setup_runs_hidden_code_in_the_pages_namespace(tmp_path: Path) -> None:
    output = run(
        """\
        <!-- snippet: setup
        user_ids = [1, 2, 3]
        -->
        '''python
        print(sum(user_ids))
        '''
        """,
        tmp_path,
    )
    assert "\n6\n" in output


def test_background_commands_run_until_the_page_ends_and_must_stop_cleanly(tmp_path: Path) -> None:
    output = run(
        """\
        '''sh
        cat > serve.py <<'EOF'
        import http.server, signal, sys
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        server = http.server.HTTPServer(("127.0.0.1", 8765), http.server.SimpleHTTPRequestHandler)
        print("serving", flush=True)
        server.serve_forever()
        EOF
        '''

        <!-- snippet: background -->
        '''sh
        python serve.py
        '''

        <!-- snippet: wait-http http://127.0.0.1:8765/serve.py -->
        '''python
        import urllib.request
        print(urllib.request.urlopen("http://127.0.0.1:8765/serve.py").status)
        '''
        """,
        tmp_path,
    )
    assert "200" in output
    assert "serving" in output


def test_a_background_command_that_fails_on_sigterm_fails_the_page(tmp_path: Path) -> None:
    message = failure(
        """\
        <!-- snippet: background -->
        '''sh
        python -c "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
        time.sleep(60)"
        '''

        '''sh
        sleep 0.5
        '''
        """,
        tmp_path,
    )
    assert message.startswith("docs/example.md:2: background command exited with status 3")


def test_a_declared_fixture_needs_its_placeholder(tmp_path: Path) -> None:
    message = failure("<!-- snippet: fixtures smtp -->\n'''python\npass\n'''\n", tmp_path)
    assert message.startswith("docs/example.md:2: the block declares the 'smtp' fixture")


def test_fixtures_are_real_and_their_placeholders_rewritten(tmp_path: Path) -> None:
    output = run(
        """\
        <!-- snippet: fixtures smtp webhook images -->
        '''python
        import os, smtplib
        from PIL import Image
        from jobq.handlers.webhook import WebhookSettings

        settings = {"host": "smtp.example.com", "port": 587, "security": "starttls"}
        with smtplib.SMTP(settings["host"], settings["port"]) as smtp:
            smtp.login("app", "anything")
            smtp.sendmail("app@example.com", ["ada@example.com"], "Subject: hi\\r\\n\\r\\nhello")
        print("security", settings["security"])
        print("images", Image.open("uploads/42.jpg").size, Image.open("uploads/avatar.png").size)
        print("media", os.path.isdir("media"))
        hook = "https://partner.example.com/hooks"
        print("hosts", WebhookSettings().allow_hosts, hook.startswith("http://127.0.0.1:"))
        '''
        """,
        tmp_path,
    )
    assert "security none" in output
    assert "images (640, 480) (256, 256)" in output
    assert "media True" in output
    assert "hosts ('127.0.0.1',) True" in output


@pytest.mark.postgres
def test_the_postgres_fixture_points_the_placeholder_at_a_schema_of_its_own(tmp_path: Path) -> None:
    output = run(
        """\
        <!-- snippet: fixtures postgres -->
        '''python
        import jobq

        queue = jobq.DurableQueue("postgresql://app@db.internal/app")

        @queue.task("report")
        def report(day: str) -> None: ...

        report.enqueue("monday")
        queue.close()
        '''

        '''sh
        jobq list --db "postgresql://app@db.internal/app" --json
        '''
        """,
        tmp_path,
    )
    assert '"monday"' in output


@pytest.mark.redis
def test_the_redis_fixture_points_the_placeholder_at_a_server_that_keeps_every_write(
    tmp_path: Path,
) -> None:
    output = run(
        """\
        <!-- snippet: fixtures redis -->
        '''python
        import redis

        server = redis.Redis.from_url("redis://redis.internal:6379/0", decode_responses=True)
        for name in ("appendonly", "appendfsync", "maxmemory-policy"):
            print(name, server.config_get(name)[name])
        server.close()
        '''
        """,
        tmp_path,
    )
    assert "appendonly yes" in output
    assert "appendfsync always" in output
    assert "maxmemory-policy noeviction" in output


def test_keep_going_names_every_failure_once(tmp_path: Path) -> None:
    page = parse_page(
        "docs/example.md",
        textwrap.dedent(
            """\
            <!-- snippet: background -->
            ```sh
            python -c "raise SystemExit(4)"
            ```

            <!-- snippet: wait-http http://127.0.0.1:8766/ -->
            ```sh
            false
            ```

            ```python
            print("still ran")
            ```
            """
        ),
    )
    with pytest.raises(PageFailed) as failed:
        run_page(page, tmp_path, keep_going=True)
    headline = str(failed.value).split("\n---", 1)[0].splitlines()
    assert headline == [
        "docs/example.md:7: the background command of docs/example.md:2 exited (4) "
        "before http://127.0.0.1:8766/ answered",
        "docs/example.md:7: shell block exited with status 1",
    ]
    assert "still ran" in str(failed.value)
