"""jobq.handlers.email against a real SMTP server (aiosmtpd on 127.0.0.1) and a real
DurableQueue: no mocks. Time between attempts passes on the FakeClock."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import time
from collections.abc import Iterator
from email import policy as mail_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import jobq
from jobq import ConfigurationError, DurableQueue, Job, JobStatus, RetryRule
from jobq.handlers import email
from jobq.handlers.email import EmailSettings, Mailer, build_message
from jobq.testing import FakeClock
from tests.helpers import eventually
from tests.integration.handlers._smtp import (
    DROP,
    HOST,
    SmtpServer,
    free_port,
    make_certificate,
    server_tls_context,
)

SENDER = "Jobq <jobq@example.com>"
LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    queue = DurableQueue(tmp_path / "jobs.db", clock=clock)
    yield queue
    email.uninstall(queue)  # closes the handler's SMTP connections
    queue.close()


def settings_for(server: SmtpServer | None = None, **changes: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port if server is not None else free_port(),
        "default_sender": SENDER,
        "timeout": 5.0,
        "local_hostname": "client.test",
    }
    values.update(changes)
    return EmailSettings(**values)


def result_of(job: Job) -> dict[str, Any]:
    assert job.result is not None
    result: dict[str, Any] = json.loads(job.result)
    return result


def run(queue: DurableQueue, job: Job) -> Job:
    queue.run_until_empty()
    return queue.get(job.id)


def mailer_of(queue: DurableQueue) -> Mailer:
    mailer = queue.extensions[email.EXTENSION_KEY]
    assert isinstance(mailer, Mailer)
    return mailer


# -- what is sent ----------------------------------------------------------------------


def test_plain_text_email_is_delivered(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    job = run(queue, send.enqueue("Ada <ada@example.com>", "Welcome", text="Hello, Ada!\n"))

    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1
    [received] = smtp.received
    assert received.mail_from == "jobq@example.com"
    assert received.rcpt_tos == ("ada@example.com",)
    message = received.parsed()
    assert message["Subject"] == "Welcome"
    assert message["From"] == SENDER
    assert message["To"] == "Ada <ada@example.com>"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Hello, Ada!\n"
    assert result_of(job) == {"message_id": message["Message-ID"], "recipients": 1, "refused": {}}
    assert message["Message-ID"].startswith(f"<jobq.{job.id}.")


def test_text_and_html_make_an_alternative(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    text = "Caf\u00e9 " + "long line " * 40
    job = run(queue, send.enqueue("ada@example.com", "Menu", text=text, html="<p>Caf\u00e9</p>"))

    assert job.status is JobStatus.COMPLETED
    message = smtp.received[0].parsed()
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().rstrip("\n") == text
    assert parts[1].get_content().rstrip("\n") == "<p>Caf\u00e9</p>"
    assert max(len(line) for line in smtp.received[0].content.splitlines()) <= 78


def test_html_only(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    run(queue, send.enqueue("ada@example.com", "Hi", html="<b>hi</b>"))
    message = smtp.received[0].parsed()
    assert message.get_content_type() == "text/html"


def test_cc_bcc_reply_to_and_custom_headers(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    job = run(
        queue,
        send.enqueue(
            ["ada@example.com", "bob@example.com"],
            "Team",
            text="hi",
            sender="Boss <boss@example.com>",
            cc=["carol@example.com"],
            bcc=["secret@example.com", "ada@example.com"],
            reply_to="Replies <replies@example.com>",
            headers={"List-Unsubscribe": "<https://example.com/u/1>", "X-Campaign": "spring"},
        ),
    )

    assert result_of(job)["recipients"] == 4  # ada once, though in To and Bcc
    [received] = smtp.received
    assert received.mail_from == "boss@example.com"
    assert received.rcpt_tos == (
        "ada@example.com",
        "bob@example.com",
        "carol@example.com",
        "secret@example.com",
    )
    message = received.parsed()
    assert message["Cc"] == "carol@example.com"
    assert message["Reply-To"] == "Replies <replies@example.com>"
    assert message["List-Unsubscribe"] == "<https://example.com/u/1>"
    assert message["X-Campaign"] == "spring"
    assert "Bcc" not in message
    assert b"secret@example.com" not in received.content


def test_attachments_arrive_intact(queue: DurableQueue, smtp: SmtpServer, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    binary = bytes(range(256)) * 100
    (folder / "data.bin").write_bytes(binary)
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 fake")
    (folder / "notes.txt").write_text("caf\u00e9\n", encoding="utf-8")
    forwarded = b"From: bob@example.com\r\nSubject: fwd\r\n\r\nhello\r\n"
    (folder / "mail.eml").write_bytes(forwarded)
    send = email.install(queue, settings_for(smtp, attachment_dirs=[str(folder)]))
    job = run(
        queue,
        send.enqueue(
            "ada@example.com",
            "Files",
            text="see attached",
            attachments=[
                str(folder / n) for n in ("data.bin", "report.pdf", "notes.txt", "mail.eml")
            ],
        ),
    )

    assert job.status is JobStatus.COMPLETED
    message = smtp.received[0].parsed()
    assert message.get_content_type() == "multipart/mixed"
    files = {
        part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
        for part in message.iter_attachments()
    }
    assert files == {
        "data.bin": ("application/octet-stream", binary),
        "report.pdf": ("application/pdf", b"%PDF-1.4 fake"),
        "notes.txt": ("text/plain", "caf\u00e9\n".encode()),
        # message/rfc822 may not be base64 (RFC 2046): sent as bytes, kept intact
        "mail.eml": ("application/octet-stream", forwarded),
    }


@pytest.mark.parametrize(
    "where",
    [
        "outside",
        "dotdot",
        "symlink",
        "symlinked_dir",
        "no_dirs",
        "relative",
        "missing",
        "too_big",
        "a_folder",
    ],
)
def test_attachments_outside_the_allowed_folders_are_refused(
    queue: DurableQueue, smtp: SmtpServer, tmp_path: Path, where: str
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (allowed / "big.bin").write_bytes(b"x" * 2000)
    (allowed / "link.txt").symlink_to(secret)
    (allowed / "sub").symlink_to(tmp_path)
    path = {
        "outside": str(secret),
        "dotdot": f"{allowed}/../secret.txt",
        "symlink": str(allowed / "link.txt"),
        "symlinked_dir": str(allowed / "sub" / "secret.txt"),
        "no_dirs": str(allowed / "big.bin"),
        "relative": "big.bin",
        "missing": str(allowed / "nope.txt"),
        "too_big": str(allowed / "big.bin"),
        "a_folder": str(allowed),
    }[where]
    dirs = () if where == "no_dirs" else (str(allowed),)
    send = email.install(queue, settings_for(smtp, attachment_dirs=dirs, max_attachment_bytes=1000))
    job = run(queue, send.enqueue("ada@example.com", "x", text="x", attachments=[path]))

    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Fail"
    assert "attachment" in job.error.message
    assert smtp.received == []
    assert smtp.connections == 0


INJECTIONS: dict[str, dict[str, Any]] = {
    "subject CRLF": {"subject": "Hi\r\nBcc: x@evil.example"},
    "subject trailing LF": {"subject": "Hi\n"},
    "subject NUL": {"subject": "Hi\x00there"},
    "subject U+2028": {"subject": "Hi\u2028Bcc: x@evil.example"},
    "to CRLF": {"to": "ada@example.com\r\nBcc: x@evil.example"},
    "to CRLF inside": {"to": "ada\r\n@example.com"},
    "cc LF": {"cc": ["carol@example.com\nBcc: x@evil.example"]},
    "bcc NUL": {"bcc": ["x@evil.example\x00"]},
    "sender CRLF": {"sender": "boss@example.com\r\nBcc: x@evil.example"},
    "reply_to CR": {"reply_to": "r@example.com\rBcc: x@evil.example"},
    "encoded newline in display name": {"to": "=?UTF-8?Q?=0A?= <ada@example.com>"},
    "encoded LS in display name": {"to": "=?UTF-8?Q?Ada=E2=80=A8Bcc=3A_x?= <ada@example.com>"},
    "encoded NUL in display name": {"to": "=?UTF-8?Q?=00?= <ada@example.com>"},
    "header name with colon": {"headers": {"X-A: b\r\nBcc": "x"}},
    "header name with space": {"headers": {"X A": "b"}},
    "header value CRLF": {"headers": {"X-A": "b\r\nBcc: x@evil.example"}},
    "structural header": {"headers": {"Content-Type": "text/html"}},
    "bcc header": {"headers": {"BCC": "x@evil.example"}},
    "two addresses in one": {"to": "ada@example.com, x@evil.example"},
    "garbage address": {"to": "not an address"},
    "empty address": {"to": ""},
    "group": {"to": "undisclosed: x@evil.example;"},
    "no domain": {"to": "ada@"},
    "no body": {"text": None},
}


@pytest.mark.parametrize("change", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_header_injection_and_bad_input_fail_before_anything_is_sent(
    queue: DurableQueue, smtp: SmtpServer, change: dict[str, Any]
) -> None:
    send = email.install(queue, settings_for(smtp))
    arguments: dict[str, Any] = {"to": "ada@example.com", "subject": "Hi", "text": "body"}
    arguments.update(change)
    job = run(queue, send.enqueue(**arguments))

    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Fail"
    assert job.error.message.startswith("cannot send this email: ")
    assert smtp.received == []
    assert smtp.connections == 0


FORBIDDEN = st.sampled_from([*LINE_BREAKS, "\x01", "\x1f", "\x7f"])


@given(st.text(max_size=20), FORBIDDEN, st.text(max_size=20))
def test_any_line_break_or_control_character_is_refused(before: str, bad: str, after: str) -> None:
    value = before + bad + after
    for field in ("subject", "to", "header", "display name"):
        arguments: dict[str, Any] = {
            "to": "ada@example.com",
            "subject": "s",
            "text": "b",
            "sender": "me@example.com",
        }
        if field == "subject":
            arguments["subject"] = value
        elif field == "to":
            arguments["to"] = f"{before}{bad}{after}@example.com"
        elif field == "header":
            arguments["headers"] = {"X-Value": value}
        else:
            arguments["to"] = f'"{value}" <ada@example.com>'
        with pytest.raises(ValueError, match=r"line breaks or control|valid email|one email"):
            build_message(**arguments)


SUBJECTS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=200
).filter(lambda s: s == " ".join(s.split()))  # mail readers unfold, so spacing may not survive


@given(SUBJECTS)
def test_any_accepted_subject_round_trips(subject: str) -> None:
    outgoing = build_message("ada@example.com", subject, text="b", sender="me@example.com")
    raw = outgoing.message.as_bytes()
    assert all(len(line) <= 998 for line in raw.splitlines())
    parsed = BytesParser(policy=mail_policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == subject
    assert list(parsed.keys()).count("Subject") == 1


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60))
def test_any_display_name_stays_inside_the_to_header(name: str) -> None:
    try:
        outgoing = build_message(
            [f'"{name}" <ada@example.com>'], "s", text="b", sender="me@example.com"
        )
    except ValueError:
        return  # refused is fine; what is accepted must not leak into other headers
    parsed = BytesParser(policy=mail_policy.default).parsebytes(outgoing.message.as_bytes())
    assert sorted(parsed.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]
    )
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ada@example.com"]
    assert outgoing.recipients == ("ada@example.com",)


# -- encoded words: what the email package decodes cannot inject either ---------------


def q_word(text: str, charset: str = "UTF-8", q: str = "Q") -> str:
    """``text`` as one RFC 2047 encoded word in the Q encoding, every byte as =XX."""
    return f"=?{charset}?{q}?{''.join(f'={byte:02X}' for byte in text.encode(charset))}?="


def b_word(text: str, charset: str = "UTF-8", b: str = "B") -> str:
    """``text`` as one RFC 2047 encoded word in the B (base64) encoding."""
    return f"=?{charset}?{b}?{base64.b64encode(text.encode(charset)).decode()}?="


BUILT_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]
REPORTED = "=?UTF-8?Q?Hello=0D=0AReply-To:_attacker@evil.example=0D=0A=0D=0ANew_body?="
BCC = "Hello\r\nBcc: x@evil.example"
ENCODED_INJECTIONS: dict[str, dict[str, Any]] = {
    "subject Q, as reported": {"subject": REPORTED},
    "subject q lowercase": {"subject": "=?utf-8?q?Hello=0D=0ABcc:_x@evil.example?="},
    "subject B": {"subject": b_word(BCC)},
    "subject b lowercase": {"subject": b_word(BCC, "utf-8", "b")},
    "subject split over two words": {
        "subject": "=?UTF-8?Q?Hello=0D?= =?UTF-8?Q?=0ABcc:_x@evil.example?="
    },
    "subject split B and Q": {"subject": f"{b_word('Hello')} {q_word(BCC[5:])}"},
    "subject after plain text": {"subject": "Hi =?UTF-8?Q?=0D=0ABcc:_x@evil.example?="},
    "subject word inside a word": {"subject": "Hi=?UTF-8?Q?=0D=0ABcc:_x@evil.example?="},
    "subject lone LF": {"subject": q_word("Hello\nBcc: x@evil.example")},
    "subject lone CR": {"subject": q_word("Hello\rBcc: x@evil.example")},
    "subject NUL": {"subject": q_word("Hello\x00")},
    "subject UTF-7": {"subject": "=?UTF-7?Q?Hello+AA0ACg-Bcc:_x@evil.example?="},
    "subject encoded twice": {"subject": q_word(q_word(BCC))},
    "subject encoded three times, B": {"subject": b_word(q_word(b_word(BCC)))},
    "custom header Q": {"headers": {"X-Campaign": q_word(BCC)}},
    "custom header B split": {"headers": {"List-Id": f"{b_word('Hello')} {b_word(BCC[5:])}"}},
    "custom header encoded twice": {"headers": {"X-Campaign": b_word(q_word(BCC))}},
    "display name in to": {"to": f"{q_word(BCC)} <ada@example.com>"},
    "quoted display name in to": {"to": f'"{q_word(BCC)}" <ada@example.com>'},
    "escaped quoted display name": {"to": f'"\\{q_word(BCC)}" <ada@example.com>'},
    "display name encoded twice": {"to": f"{q_word(q_word(BCC))} <ada@example.com>"},
    "display name in cc": {"cc": [f"{b_word(BCC)} <carol@example.com>"]},
    "display name in reply_to": {"reply_to": f"{q_word(BCC, 'utf-8', 'q')} <r@example.com>"},
    "display name in sender": {"sender": f"{q_word(q_word(BCC))} <boss@example.com>"},
}


@pytest.mark.parametrize("change", ENCODED_INJECTIONS.values(), ids=ENCODED_INJECTIONS.keys())
def test_encoded_header_injection_fails_before_anything_is_sent(
    queue: DurableQueue, smtp: SmtpServer, change: dict[str, Any]
) -> None:
    send = email.install(queue, settings_for(smtp))
    arguments: dict[str, Any] = {"to": "ada@example.com", "subject": "Hi", "text": "body\n"}
    arguments.update(change)
    job = run(queue, send.enqueue(**arguments))

    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Fail"
    assert job.error.message.startswith("cannot send this email: ")
    assert "line breaks or control characters" in job.error.message
    assert "encoded words" in job.error.message
    assert smtp.received == []
    assert smtp.connections == 0


@pytest.mark.parametrize(
    "name",
    [
        "=?UTF-8?Q?report=0D=0ABcc:_x@evil.example?=.txt",
        "=?utf-8?q?report=0D=0A=0D=0Ainjected_body?=",
        "=?UTF-8?Q?report=0D?= =?UTF-8?Q?=0AContent-Type:_text=2Fhtml?=.pdf",
        q_word("=?UTF-8?Q?a=0D=0ABcc:_x@evil.example?=") + ".bin",  # encoded twice
    ],
)
def test_encoded_injection_in_an_attachment_file_name_fails(
    queue: DurableQueue, smtp: SmtpServer, tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(b"%PDF-1.4 fake")
    send = email.install(queue, settings_for(smtp, attachment_dirs=[str(tmp_path)]))
    job = run(
        queue,
        send.enqueue(
            "ada@example.com", "Files", text="see attached", attachments=[str(tmp_path / name)]
        ),
    )

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.type == "Fail"
    assert "attachment file name must not contain line breaks" in job.error.message
    assert smtp.received == []


def _type_only(value: object, what: str) -> str:
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    "change",
    [*ENCODED_INJECTIONS.values(), {"subject": BCC}, {"headers": {"X-A": BCC}}],
    ids=[*ENCODED_INJECTIONS.keys(), "subject raw CRLF", "custom header raw CRLF"],
)
def test_with_the_input_checks_off_no_injected_header_reaches_the_wire(
    queue: DurableQueue, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    # The check of the written message must hold on its own, whatever the
    # standard library's version writes for a decoded line break.
    for module in (email.headers, email.message):
        monkeypatch.setattr(module, "check_header_text", _type_only)
        monkeypatch.setattr(module, "check_text", _type_only)
    send = email.install(queue, settings_for(smtp))
    arguments: dict[str, Any] = {"to": "ada@example.com", "subject": "Hi", "text": "body\n"}
    arguments.update(change)
    job = run(queue, send.enqueue(**arguments))

    if job.status is JobStatus.COMPLETED:  # a Python whose email package re-encodes it
        [received] = smtp.received
        built = [*BUILT_HEADERS, *change.get("headers", {})]
        if "cc" in change:
            built.insert(2, "Cc")
        if "reply_to" in change:
            built.insert(2, "Reply-To")
        assert sorted(received.header_names()) == sorted(built)
        assert received.header_block_is_clean()
        assert received.body() == b"body\r\n"
    else:
        assert job.status is JobStatus.FAILED
        assert job.error is not None
        assert job.error.type == "Fail"
        assert job.error.message.startswith("cannot send this email: ")
        assert smtp.received == []


def test_mailer_refuses_a_message_that_would_not_read_back_as_built(smtp: SmtpServer) -> None:
    outgoing = build_message("ada@example.com", "Hi", text="body\n", sender=SENDER)
    outgoing.message.replace_header("Subject", REPORTED)  # past build_message's checks
    mailer = Mailer(settings_for(smtp))
    try:
        with pytest.raises(ValueError, match=r"would not be the one built|refused to write"):
            mailer.send(outgoing)
    finally:
        mailer.close()
    assert smtp.received == []
    assert smtp.connections == 0


@pytest.mark.parametrize(
    "subject",
    [
        "Gr\u00fc\u00dfe from Z\u00fcrich \u2713",
        "Is 2+2 =? 4",
        "=?",
        "a =?b?= c",
        "=?UTF-8?Q?",
        "50% off =?? ?= today",
        "Preis: 10 \u20ac =?EUR",
        " ".join(["Gr\u00fc\u00dfe"] * 30),  # folded over several lines
        "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= literal",  # decoded by the email package, as before
    ],
)
def test_legitimate_subjects_arrive_with_exactly_the_headers_built(
    queue: DurableQueue, smtp: SmtpServer, subject: str
) -> None:
    send = email.install(queue, settings_for(smtp))
    job = run(
        queue, send.enqueue("J\u00fcrgen M\u00fcller <ada@example.com>", subject, text="body\n")
    )

    assert job.status is JobStatus.COMPLETED
    [received] = smtp.received
    assert received.header_names() == BUILT_HEADERS
    assert received.header_block_is_clean()
    assert received.body() == b"body\r\n"
    message = received.parsed()
    expected = "Gr\u00fc\u00dfe literal" if subject.startswith("=?UTF-8?Q?Gr") else subject
    assert message["Subject"] == expected
    assert message["To"].addresses[0].display_name == "J\u00fcrgen M\u00fcller"


@given(
    st.text(max_size=15),
    FORBIDDEN,
    st.text(max_size=15),
    st.sampled_from(["Q", "q", "B", "b"]),
    st.sampled_from(["UTF-8", "utf-8", "UTF-16"]),
    st.booleans(),
)
def test_any_encoded_line_break_or_control_character_is_refused(
    before: str, bad: str, after: str, encoding: str, charset: str, twice: bool
) -> None:
    def encode(text: str) -> str:
        try:
            text.encode(charset)
        except UnicodeEncodeError:  # a lone surrogate: UTF-8 cannot carry it either
            text = text.encode(charset, "replace").decode(charset)
        if encoding in "Qq":
            return q_word(text, charset, encoding)
        return b_word(text, charset, encoding)

    word = encode(before + bad + after)
    if twice:
        word = encode(word)
    for field in ("subject", "header", "display name", "quoted display name"):
        arguments: dict[str, Any] = {
            "to": "ada@example.com",
            "subject": "s",
            "text": "b",
            "sender": "me@example.com",
        }
        if field == "subject":
            arguments["subject"] = word
        elif field == "header":
            arguments["headers"] = {"X-Value": word}
        elif field == "display name":
            arguments["to"] = f"{word} <ada@example.com>"
        else:
            arguments["to"] = f'"{word}" <ada@example.com>'
        with pytest.raises(ValueError, match="line breaks or control"):
            build_message(**arguments)


# -- what is retried -------------------------------------------------------------------


def test_temporary_refusal_is_retried_and_delivered_once(
    queue: DurableQueue, smtp: SmtpServer, clock: FakeClock
) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse("ada@example.com", "451 4.7.1 greylisted, try again later")
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))

    assert job.status is JobStatus.PENDING  # scheduled for another attempt
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert "451 4.7.1 greylisted, try again later" in job.error.message
    assert job.run_at - clock.now() <= 60  # retry_delay
    assert smtp.received == []

    clock.advance(60)
    job = run(queue, job)
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    assert len(smtp.received) == 1
    assert smtp.connections == 1  # the refusal left the connection usable (RSET)


@pytest.mark.parametrize("reply", ["451 4.3.0 queue full", DROP])
def test_temporary_failure_at_data_is_retried(
    queue: DurableQueue, smtp: SmtpServer, clock: FakeClock, reply: str
) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse_data(reply)
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert job.status is JobStatus.PENDING
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert ("451 4.3.0 queue full" if reply != DROP else "closed the connection") in (
        job.error.message
    )

    clock.advance(60)
    job = run(queue, job)
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    assert len(smtp.received) == 1


def test_permanent_refusal_fails_at_once(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse("nobody@example.com", "550 5.1.1 <nobody@example.com>: no such user", times=None)
    job = run(queue, send.enqueue("nobody@example.com", "Hi", text="hi"))

    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Refused"
    assert "550 5.1.1 <nobody@example.com>: no such user" in job.error.message
    assert job.error.message.endswith("; not retried: Refused is in discard_on")
    assert smtp.received == []

    # The connection survived the refusal and carries the next message.
    run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert len(smtp.received) == 1
    assert smtp.connections == 1


def test_retry_rules_given_to_install_replace_the_handler_s_own(
    queue: DurableQueue, smtp: SmtpServer, clock: FakeClock
) -> None:
    send = email.install(
        queue, settings_for(smtp), retry_on={jobq.Refused: RetryRule(2, backoff=5)}, discard_on=()
    )
    smtp.refuse("ada@example.com", "550 5.1.1 mailbox not set up yet")
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert job.status is JobStatus.PENDING  # retried, as the rule says
    assert job.run_at == clock.now() + 5
    assert job.error is not None
    assert job.error.message.endswith(
        "retried by the retry_on rule for Refused (at most 2 attempts)"
    )
    clock.advance(5)
    assert run(queue, job).status is JobStatus.COMPLETED
    assert len(smtp.received) == 1


def test_permanent_refusal_of_the_message_fails_at_once(
    queue: DurableQueue, smtp: SmtpServer
) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse_data("554 5.7.1 message looks like spam")
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert "refused the message: 554 5.7.1 message looks like spam" in job.error.message


def test_partial_refusal_sends_to_the_others_and_reports(
    queue: DurableQueue, smtp: SmtpServer, clock: FakeClock
) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse("gone@example.com", "550 5.1.1 no such user", times=None)
    smtp.refuse("busy@example.com", "452 4.2.2 mailbox full")
    job = run(
        queue,
        send.enqueue(
            ["ada@example.com", "gone@example.com"], "Hi", text="hi", cc=["busy@example.com"]
        ),
    )

    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1
    assert result_of(job)["recipients"] == 1
    assert result_of(job)["refused"] == {
        "gone@example.com": "550 5.1.1 no such user",
        "busy@example.com": "452 4.2.2 mailbox full",
    }
    [received] = smtp.received
    assert received.rcpt_tos == ("ada@example.com",)
    clock.advance(3600)
    assert queue.run_until_empty() == 0  # nothing is sent again
    assert len(smtp.received) == 1


def test_421_at_rcpt_closes_the_connection_and_retries(
    queue: DurableQueue, smtp: SmtpServer, clock: FakeClock
) -> None:
    send = email.install(queue, settings_for(smtp))
    smtp.refuse("ada@example.com", "421 4.3.2 shutting down")
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert job.status is JobStatus.PENDING
    assert job.error is not None
    assert "421 4.3.2 shutting down" in job.error.message

    clock.advance(60)
    job = run(queue, job)
    assert job.status is JobStatus.COMPLETED
    assert smtp.connections == 2  # the 421 connection was not reused


def test_unreachable_server_is_retried_then_fails(queue: DurableQueue, clock: FakeClock) -> None:
    send = email.install(queue, settings_for(port=free_port(), max_attempts=3))
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    for _ in range(2):
        assert job.status is JobStatus.PENDING
        assert job.error is not None
        assert job.error.type == "TransientError"
        assert "cannot reach SMTP server" in job.error.message
        clock.advance(3600)
        job = run(queue, job)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 3
    assert job.error is not None
    assert "Connection refused" in job.error.message


def test_silent_server_times_out(queue: DurableQueue, clock: FakeClock) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind((HOST, 0))
        silent.listen(8)
        send = email.install(
            queue, settings_for(port=silent.getsockname()[1], timeout=0.2, max_attempts=2)
        )
        started = time.monotonic()
        job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
        assert time.monotonic() - started < 3
        assert job.status is JobStatus.PENDING
        assert job.error is not None
        assert "timed out" in job.error.message
        clock.advance(3600)
        job = run(queue, job)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 2


@pytest.mark.parametrize("farewell", [b"", b"421 4.4.2 idle timeout\r\n"])
def test_connection_closed_while_idle_is_replaced(
    queue: DurableQueue, smtp: SmtpServer, farewell: bytes
) -> None:
    send = email.install(queue, settings_for(smtp))
    first = run(queue, send.enqueue("ada@example.com", "One", text="1"))
    smtp.close_connections(farewell)
    second = run(queue, send.enqueue("ada@example.com", "Two", text="2"))

    assert (first.status, second.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    assert second.attempts == 1  # recovered within the attempt
    assert [r.parsed()["Subject"] for r in smtp.received] == ["One", "Two"]
    assert smtp.connections == 2
    assert mailer_of(queue).connections_opened == 2


# -- login and TLS ---------------------------------------------------------------------


def test_login(queue: DurableQueue, clock: FakeClock) -> None:
    server = SmtpServer(login=("mailer", "s3cret"))
    try:
        good = email.install(queue, settings_for(server, username="mailer", password="s3cret"))
        job = run(queue, good.enqueue("ada@example.com", "Hi", text="hi"))
        job = run(queue, good.enqueue("bob@example.com", "Hi", text="hi"))
        assert job.status is JobStatus.COMPLETED
        assert len(server.received) == 2
        assert server.connections == 1  # logged in once

        bad = email.install(queue, settings_for(server, username="mailer", password="wrong"))
        job = run(queue, bad.enqueue("ada@example.com", "Hi", text="hi"))
        assert job.status is JobStatus.FAILED
        assert job.attempts == 1
        assert job.error is not None
        assert "refused the login: 535" in job.error.message

        none = email.install(queue, settings_for(server))
        job = run(queue, none.enqueue("ada@example.com", "Hi", text="hi"))
        assert job.status is JobStatus.FAILED
        assert job.error is not None
        assert "refused the sender: 530 5.7.0 Authentication required" in job.error.message
        assert len(server.received) == 2
    finally:
        email.uninstall(queue)
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make a self-signed certificate with the openssl command")
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_a_private_ca(
    queue: DurableQueue, certificate: tuple[Path, Path], security: str
) -> None:
    context = server_tls_context(*certificate)
    server = (
        SmtpServer(starttls=context) if security == "starttls" else SmtpServer(implicit_tls=context)
    )
    try:
        trusted = email.install(
            queue, settings_for(server, security=security, cafile=str(certificate[0]))
        )
        job = run(queue, trusted.enqueue("ada@example.com", "Hi", text="hi"))
        assert job.status is JobStatus.COMPLETED
        assert len(server.received) == 1

        untrusted = email.install(queue, settings_for(server, security=security))
        job = run(queue, untrusted.enqueue("ada@example.com", "Hi", text="hi"))
        assert job.status is JobStatus.FAILED
        assert job.attempts == 1
        assert job.error is not None
        assert "is not trusted" in job.error.message
        assert len(server.received) == 1
    finally:
        email.uninstall(queue)
        server.stop()


def test_starttls_required_but_not_offered(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp, security="starttls"))
    job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "does not offer STARTTLS" in job.error.message
    assert smtp.received == []


# -- many messages ---------------------------------------------------------------------


def test_bulk_newsletter_reuses_one_connection_per_thread(tmp_path: Path, smtp: SmtpServer) -> None:
    queue = DurableQueue(tmp_path / "bulk.db")
    pool = None
    try:
        send = email.install(queue, settings_for(smtp))
        addresses = [f"user{n}@example.com" for n in range(1000)]
        ids = send.enqueue_many(
            [{"to": a, "subject": "News #1", "text": f"Hello {a}"} for a in addresses]
        )
        assert len(ids) == 1000
        pool = queue.start_workers(concurrency=4)
        eventually(
            lambda: queue.stats().queues["default"].counts.get(JobStatus.COMPLETED) == 1000,
            timeout=30,
        )
    finally:
        if pool is not None:
            pool.stop()
        email.uninstall(queue)
        queue.close()
    received = [r.rcpt_tos for r in smtp.received]
    assert sorted(received) == sorted((a,) for a in addresses)  # each exactly once
    assert smtp.connections <= 4


# -- settings and installation ---------------------------------------------------------


def test_settings_from_mapping(tmp_path: Path) -> None:
    settings = EmailSettings.from_mapping(
        {
            "host": "smtp.example.com",
            "port": 587,
            "security": "starttls",
            "attachment_dirs": [str(tmp_path)],
        }
    )
    assert settings.attachment_dirs == (str(tmp_path),)
    assert settings.timeout == 30.0
    with pytest.raises(ConfigurationError, match="'hots'"):
        EmailSettings.from_mapping({"hots": "smtp.example.com"})
    with pytest.raises(ConfigurationError, match="port must be an integer"):
        EmailSettings.from_mapping({"port": "587"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 0}, "port must be an integer from 1 to 65535, got 0"),
        ({"security": "ssl"}, "security must be 'none', 'starttls' or 'tls', got 'ssl'"),
        ({"username": "u"}, "give both username and password"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0, got 0"),
        ({"default_sender": "nobody"}, "default_sender must be one email address"),
        ({"attachment_dirs": ("relative",)}, "attachment_dirs must hold absolute paths"),
        ({"attachment_dirs": "/srv"}, "attachment_dirs must be a list of folders"),
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"cafile": "/nonexistent.pem"}, "cafile '/nonexistent.pem' is not a file"),
        ({"host": "a\r\nb"}, "host must be a server name"),
    ],
)
def test_settings_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmailSettings(**changes)


def test_password_is_not_in_repr() -> None:
    assert "hunter2" not in repr(EmailSettings(username="u", password="hunter2"))


def test_install_from_a_mapping_and_max_attempts(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(
        queue, {"host": HOST, "port": smtp.port, "max_attempts": 7, "default_sender": SENDER}
    )
    assert send.name == email.TASK_NAME
    assert send.max_attempts == 7
    assert queue.get_task(email.TASK_NAME) is send
    assert run(queue, send.enqueue("ada@example.com", "Hi", text="hi")).status is (
        JobStatus.COMPLETED
    )
    with pytest.raises(ConfigurationError, match="unknown JOBQ_EMAIL setting"):
        email.install(queue, {"server": "x"})


def test_reinstall_and_uninstall_close_connections(queue: DurableQueue, smtp: SmtpServer) -> None:
    send = email.install(queue, settings_for(smtp))
    run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    first = mailer_of(queue)
    send = email.install(queue, settings_for(smtp, max_attempts=2))
    assert mailer_of(queue) is not first
    assert first._open == set()  # QUIT and closed
    run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    assert smtp.connections == 2
    email.uninstall(queue)
    assert email.EXTENSION_KEY not in queue.extensions


def test_task_without_installed_handler_fails_clearly(tmp_path: Path, smtp: SmtpServer) -> None:
    queue = DurableQueue(tmp_path / "other.db")
    try:
        send = email.install(queue, settings_for(smtp))
        email.uninstall(queue)
        job = run(queue, send.enqueue("ada@example.com", "Hi", text="hi"))
    finally:
        queue.close()
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert "the jobq.email handler is not installed on this queue" in job.error.message
    assert "jobq.handlers.email.install(queue, settings)" in job.error.message
    assert smtp.received == []
