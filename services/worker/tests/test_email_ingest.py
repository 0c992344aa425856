"""ingest.email against a real Dovecot (TLS, self-signed certificate) and a real PostgreSQL,
run through the worker's executor like any job."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_asyncio
from cesar_core.db import Database
from cesar_core.jobs import JobRegistry
from cesar_core.jobs.dispatch import arq_job_id
from cesar_core.redis import RedisClient
from cesar_worker import main as worker_main
from cesar_worker.config import WorkerConfig
from cesar_worker.jobs import email as email_job
from cesar_worker.runtime import WorkerRuntime
from imapclient import IMAPClient
from pydantic import SecretStr

from .conftest import FakeClock
from .dovecot import Dovecot, dovecot_binary, start_dovecot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        dovecot_binary() is None,
        reason="Dovecot is not installed (scripts/install-system-deps.sh installs dovecot-imapd)",
    ),
]

STATE = "SELECT mailbox, last_uid, uid_validity, messages_ingested, status, last_error FROM email_ingest_state ORDER BY mailbox"
MESSAGES = (
    "SELECT mailbox, uid, message_id, thread_id, subject, sender, recipients, received_at, "
    "headers, body_text, attachments FROM email_messages ORDER BY mailbox, uid"
)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = dovecot_binary()
    assert binary is not None
    server = start_dovecot(binary)
    yield server
    server.stop()


def mail(
    n: int,
    *,
    subject: str | None = None,
    message_id: bool = True,
    attachment: bool = False,
    html: bool = False,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ada <ada@example.org>"
    msg["To"] = "ops@example.org, Bob <bob@example.org>"
    msg["Cc"] = "carol@example.org"
    msg["Subject"] = subject or f"report {n}"
    msg["Date"] = f"Tue, 0{1 + n % 9} Dec 2026 10:00:00 +0000"
    if message_id:
        msg["Message-ID"] = f"<msg-{n}@example.org>"
    if html:
        msg.set_content(f"<p>hello <b>{n}</b></p>", subtype="html")
    else:
        msg.set_content(f"hello {n}\n")
    if attachment:
        msg.add_attachment(
            b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="q.pdf"
        )
    return msg.as_bytes()


class Mailbox:
    """The test's own IMAP session, to put messages in and move folders around."""

    def __init__(self, server: Dovecot) -> None:
        context = ssl.create_default_context(cafile=server.ca_file)
        self.client = IMAPClient("127.0.0.1", port=server.port, ssl_context=context, timeout=10)
        self.client.login(server.user, server.password)

    def append(self, folder: str, *messages: bytes) -> None:
        if not self.client.folder_exists(folder):
            self.client.create_folder(folder)
        for raw in messages:
            self.client.append(folder, raw)

    def recreate(self, folder: str) -> None:
        """Delete and create the folder again: the server gives it a new UIDVALIDITY."""
        self.client.delete_folder(folder)
        self.client.create_folder(folder)

    def close(self) -> None:
        self.client.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Mailbox]:
    box = Mailbox(dovecot)
    yield box
    box.close()


@pytest.fixture
def imap_config(config: WorkerConfig, dovecot: Dovecot) -> WorkerConfig:
    return config.model_copy(
        update={
            "imap_url": dovecot.url,
            "imap_user": dovecot.user,
            "imap_password": SecretStr(dovecot.password),
            "imap_ca_file": dovecot.ca_file,
            "imap_folders": "INBOX,Lists",
        }
    )


@pytest_asyncio.fixture
async def rt(
    imap_config: WorkerConfig,
    db: Database,
    redis: RedisClient,
    registry: JobRegistry,
    clock: FakeClock,
    arq_cleanup: None,
) -> AsyncIterator[WorkerRuntime]:
    runtime = WorkerRuntime(imap_config, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await runtime.start(serve_metrics=False)
    yield runtime
    await runtime.stop()


async def ingest(
    rt: WorkerRuntime, payload: dict[str, Any] | None = None, *, attempts: int = 1
) -> tuple[str, Any]:
    job = await rt.queue.enqueue("ingest.email", payload or {}, max_attempts=attempts)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    return outcome, await rt.queue.get(job.id)


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        return [dict(r) for r in await conn.fetch(sql)]


async def test_new_messages_are_stored_once_with_headers_body_and_attachments(
    rt: WorkerRuntime, db: Database, mailbox: Mailbox, dovecot: Dovecot
) -> None:
    mailbox.append("INBOX", mail(1, attachment=True), mail(2, html=True), mail(3, message_id=False))
    mailbox.append("Lists", mail(4))

    outcome, job = await ingest(rt)
    assert outcome == "succeeded", job.last_error
    assert job.result["messages_added"] == 4 and job.result["status"] == "succeeded"

    stored = await rows(db, MESSAGES)
    inbox = f"{dovecot.user}@127.0.0.1:{dovecot.port}/INBOX"
    assert [(m["mailbox"], m["uid"], m["subject"]) for m in stored] == [
        (inbox, 1, "report 1"),
        (inbox, 2, "report 2"),
        (inbox, 3, "report 3"),
        (inbox.replace("/INBOX", "/Lists"), 1, "report 4"),
    ]
    first = stored[0]
    assert first["message_id"] == "<msg-1@example.org>"
    assert first["sender"] == "Ada <ada@example.org>"
    assert first["recipients"] == ["ops@example.org", "bob@example.org", "carol@example.org"]
    assert first["body_text"] == "hello 1\n"
    assert json.loads(first["attachments"]) == [
        {"filename": "q.pdf", "content_type": "application/pdf", "size": 13}
    ]
    assert json.loads(first["headers"])["subject"] == ["report 1"]
    assert first["received_at"].isoformat() == "2026-12-02T10:00:00+00:00"
    assert "hello" in stored[1]["body_text"] and "<b>" not in stored[1]["body_text"]
    assert stored[2]["message_id"].startswith("<sha256-")  # none given: a content hash

    state = await rows(db, STATE)
    assert [(s["last_uid"], s["messages_ingested"], s["status"]) for s in state] == [
        (3, 3, "ok"),
        (1, 1, "ok"),
    ]
    log = await rows(db, "SELECT source, status, rows_total, job_id FROM ingestion_log")
    assert log == [{"source": "email", "status": "succeeded", "rows_total": 4, "job_id": job.id}]

    # a rerun finds nothing new; a lost state row re-reads the folder and stores no duplicate
    outcome, job = await ingest(rt)
    assert (outcome, job.result["messages_seen"]) == ("succeeded", 0)
    async with db.connection() as conn:
        await conn.execute("DELETE FROM email_ingest_state")
    outcome, job = await ingest(rt)
    assert (outcome, job.result["messages_seen"], job.result["messages_added"]) == (
        "succeeded",
        4,
        0,
    )
    mailbox.append("INBOX", mail(5))
    outcome, job = await ingest(rt)
    assert (job.result["messages_seen"], job.result["messages_added"]) == (1, 1)
    assert len(await rows(db, MESSAGES)) == 5


async def test_a_uidvalidity_change_rescans_the_folder_without_duplicates(
    rt: WorkerRuntime, db: Database, mailbox: Mailbox
) -> None:
    mailbox.append("Lists", mail(1), mail(2))
    assert (await ingest(rt, {"folders": ["Lists"]}))[0] == "succeeded"
    before = (await rows(db, STATE))[0]

    mailbox.recreate("Lists")  # new UIDVALIDITY; the same two messages, then a third
    mailbox.append("Lists", mail(3), mail(1), mail(2))
    outcome, job = await ingest(rt, {"folders": ["Lists"]})
    assert outcome == "succeeded", job.last_error
    assert job.result["folders"]["Lists"] == {"seen": 3, "added": 1, "rescanned": True}

    after = (await rows(db, STATE))[0]
    assert after["uid_validity"] != before["uid_validity"]
    assert (after["last_uid"], after["messages_ingested"]) == (3, 3)
    stored = await rows(db, MESSAGES)
    assert sorted((m["message_id"], m["uid"]) for m in stored) == [
        ("<msg-1@example.org>", 2),  # renumbered by the server, still one row
        ("<msg-2@example.org>", 3),
        ("<msg-3@example.org>", 1),
    ]


async def test_a_crash_mid_batch_resumes_after_the_last_committed_batch(
    rt: WorkerRuntime, db: Database, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(email_job, "FETCH_BATCH", 2)
    mailbox.append("INBOX", mail(1), mail(2), mail(3), mail(4, subject="poison"), mail(5))
    async with db.connection() as conn:  # the second batch's transaction fails
        await conn.execute(
            "ALTER TABLE email_messages ADD CONSTRAINT poison CHECK (subject <> 'poison')"
        )
    outcome, job = await ingest(rt, {"folders": ["INBOX"]})
    assert outcome == "failed"
    assert "poison" in (job.last_error or "")
    state = (await rows(db, STATE))[0]
    assert (state["last_uid"], state["status"]) == (2, "error")  # batch 1 and its state only
    assert "poison" in state["last_error"]
    assert len(await rows(db, MESSAGES)) == 2
    log = await rows(db, "SELECT status, error_message, errors FROM ingestion_log")
    assert log[0]["status"] == "failed" and "poison" in log[0]["error_message"]

    async with db.connection() as conn:
        await conn.execute("ALTER TABLE email_messages DROP CONSTRAINT poison")
    outcome, job = await ingest(rt, {"folders": ["INBOX"]})
    assert outcome == "succeeded", job.last_error
    assert job.result["messages_added"] == 3
    stored = await rows(db, MESSAGES)
    assert [m["uid"] for m in stored] == [1, 2, 3, 4, 5]
    assert (await rows(db, STATE))[0]["last_uid"] == 5


async def test_a_refused_login_fails_at_once_and_is_logged(
    rt: WorkerRuntime, db: Database, dovecot: Dovecot
) -> None:
    rt.config = rt.config.model_copy(update={"imap_password": SecretStr("wrong")})
    rt.executor.config = rt.config  # the job context's settings come from the executor
    outcome, job = await ingest(rt, attempts=5)
    assert outcome == "failed"  # not retrying: another attempt cannot help
    assert f"IMAP login as {dovecot.user} refused" in (job.last_error or "")
    log = await rows(db, "SELECT source, status, error_message FROM ingestion_log")
    assert log[0]["status"] == "failed" and "refused" in log[0]["error_message"]
    assert "wrong" not in json.dumps(log)


def test_the_account_must_use_tls_unless_on_loopback(config: WorkerConfig) -> None:
    base = {"imap_user": "u", "imap_password": SecretStr("p")}
    plain = config.model_copy(update={**base, "imap_url": "imap://mail.example.org"})
    with pytest.raises(email_job.PermanentJobError, match="use imaps://"):
        email_job.ImapAccount.from_config(plain)
    local = config.model_copy(update={**base, "imap_url": "imap://127.0.0.1:1143"})
    assert email_job.ImapAccount.from_config(local).tls is False
    unset = config.model_copy(update={"imap_url": None})
    with pytest.raises(email_job.PermanentJobError, match="IMAP_URL is not set"):
        email_job.ImapAccount.from_config(unset)


async def test_the_worker_schedules_one_ingest_at_a_time(
    imap_config: WorkerConfig, rt: WorkerRuntime, db: Database
) -> None:
    names = [c.name for c in worker_main.cron_jobs(imap_config)]
    assert not any(n.endswith(".email_ingest") for n in names)  # no interval: not scheduled
    every = imap_config.model_copy(update={"email_ingest_interval_seconds": 30})
    (entry,) = [c for c in worker_main.cron_jobs(every) if c.name.endswith(".email_ingest")]

    ctx = {worker_main.RUNTIME_KEY: rt}
    await entry.coroutine(ctx)
    await entry.coroutine(ctx)  # the first is still active: no second job
    jobs = await rows(db, "SELECT job_type, unique_key FROM job_queue")
    assert jobs == [{"job_type": "ingest.email", "unique_key": "cron:ingest.email"}]
