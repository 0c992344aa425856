"""``ingest.email``: new messages of an IMAP mailbox into ``email_messages``.

The account is the worker's (``IMAP_URL`` imaps://host[:port], ``IMAP_USER``, ``IMAP_PASSWORD``
or ``IMAP_PASSWORD_FILE``, ``IMAP_FOLDERS``), never the payload's. Per folder, the state row in
``email_ingest_state`` (key ``user@host:port/folder``) holds the folder's UIDVALIDITY and the
last UID stored. A run selects the folder read-only, searches the UIDs above that one, fetches
them in batches of :data:`FETCH_BATCH` and, for each batch, stores the messages (headers, text
body, attachment metadata) and advances the state *in one transaction*: a crash between two
batches resumes after the last one committed.

Idempotent: messages are keyed by ``(mailbox, Message-ID)`` (a hash of the raw message when it
has none) and inserted ``ON CONFLICT DO NOTHING``, so a rerun, a lost state row or a changed
UIDVALIDITY (the server renumbered the folder: it is scanned again from UID 1, the stored UIDs
updated) never stores a message twice. Every run has an ``ingestion_log`` row (source
``email``) with the counts and the error of each failing folder.

The client is IMAPClient (maintained, complete, parses FETCH responses and handles TLS/literals
for us); it is synchronous, so each call runs in a thread (``asyncio.to_thread``) and the event
loop never blocks on the network. Plain ``imap://`` is accepted only for a loopback host (tests,
a local relay); anything else needs ``imaps://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import ipaddress
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
from cesar_core.errors import CesarError
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import EmailIngestPayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from cesar_worker.config import WorkerConfig

__all__ = ["FETCH_BATCH", "JOB", "ImapAccount", "ParsedMessage", "parse_message"]

SOURCE = "email"
FETCH_BATCH = 50
MAX_BODY_CHARS = 1_000_000
MAX_ERRORS_RECORDED = 50

SELECT_LOG = "SELECT id FROM ingestion_log WHERE job_id = $1 ORDER BY started_at LIMIT 1"
INSERT_LOG = """
INSERT INTO ingestion_log (source, job_id, status, started_at, created_at)
VALUES ($1, $2, 'running', $3, $3)
RETURNING id
"""
FINISH_LOG = """
UPDATE ingestion_log
SET status = $2, rows_total = $3, rows_ok = $4, rows_failed = $5, errors = CAST($6 AS JSONB),
    error_message = $7, details = CAST($8 AS JSONB), finished_at = $9, updated_at = $9
WHERE id = $1
"""
SELECT_STATE = "SELECT last_uid, uid_validity FROM email_ingest_state WHERE mailbox = $1"
INSERT_MESSAGE = """
INSERT INTO email_messages (mailbox, uid, message_id, thread_id, subject, sender, recipients,
                            received_at, headers, body_text, attachments, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CAST($9 AS JSONB), $10, CAST($11 AS JSONB), $12, $12)
ON CONFLICT (mailbox, message_id) DO NOTHING
RETURNING id
"""
# already stored (rerun, or a re-scan after a UIDVALIDITY change): only its UID moves
RENUMBER_MESSAGE = """
UPDATE email_messages SET uid = $3, updated_at = $4
WHERE mailbox = $1 AND message_id = $2 AND uid IS DISTINCT FROM $3
"""
ADVANCE_STATE = """
INSERT INTO email_ingest_state (mailbox, last_uid, uid_validity, last_message_at,
                                messages_ingested, status, last_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'running', $6, $6, $6)
ON CONFLICT (mailbox) DO UPDATE SET
    last_uid = EXCLUDED.last_uid,
    uid_validity = EXCLUDED.uid_validity,
    last_message_at = COALESCE(
        GREATEST(email_ingest_state.last_message_at, EXCLUDED.last_message_at),
        email_ingest_state.last_message_at, EXCLUDED.last_message_at),
    messages_ingested = email_ingest_state.messages_ingested + EXCLUDED.messages_ingested,
    status = 'running', last_error = NULL,
    last_run_at = EXCLUDED.last_run_at, updated_at = EXCLUDED.updated_at
"""
FINISH_STATE = """
INSERT INTO email_ingest_state (mailbox, status, last_error, last_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4, $4)
ON CONFLICT (mailbox) DO UPDATE SET
    status = EXCLUDED.status, last_error = EXCLUDED.last_error,
    last_run_at = EXCLUDED.last_run_at, updated_at = EXCLUDED.updated_at
"""
_TAGS = re.compile(r"<[^>]+>")


class MailboxError(CesarError):
    """The IMAP server or the connection failed (a retry may help)."""


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    tls: bool
    user: str
    password: str
    ca_file: str | None
    timeout: float

    @classmethod
    def from_config(cls, config: WorkerConfig) -> ImapAccount:
        if not config.imap_url:
            raise PermanentJobError("IMAP_URL is not set: configure the mailbox on the worker")
        try:
            parts = urlsplit(config.imap_url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise PermanentJobError(f"IMAP_URL is not a valid URL: {exc}") from exc
        if parts.scheme not in ("imaps", "imap") or not host:
            raise PermanentJobError("IMAP_URL must look like imaps://host[:port]")
        if parts.password:
            raise PermanentJobError("IMAP_URL must not carry a password: use IMAP_PASSWORD(_FILE)")
        if parts.scheme == "imap" and not _is_loopback(host):
            raise PermanentJobError(
                f"IMAP_URL imap://{host} has no TLS: use imaps:// (plain imap:// is accepted "
                "only for a loopback host)"
            )
        user = config.imap_user or parts.username
        if not user or config.imap_password is None:
            raise PermanentJobError("set IMAP_USER and IMAP_PASSWORD (or IMAP_PASSWORD_FILE)")
        tls = parts.scheme == "imaps"
        return cls(
            host=host,
            port=port or (993 if tls else 143),
            tls=tls,
            user=user,
            password=config.imap_password.get_secret_value(),
            ca_file=config.imap_ca_file,
            timeout=config.imap_timeout_seconds,
        )

    def mailbox(self, folder: str) -> str:
        return f"{self.user}@{self.host}:{self.port}/{folder}"

    def connect(self) -> IMAPClient:
        """Log in (blocking: call in a thread)."""
        context = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
        try:
            client = IMAPClient(
                self.host, port=self.port, ssl=self.tls, ssl_context=context, timeout=self.timeout
            )
        except (OSError, IMAPClientError) as exc:
            raise MailboxError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        try:
            client.login(self.user, self.password)
        except LoginError as exc:
            _logout(client)
            raise PermanentJobError(f"IMAP login as {self.user} refused: {_text(exc)}") from exc
        except (OSError, IMAPClientError) as exc:
            _logout(client)
            raise MailboxError(f"IMAP login failed: {exc}") from exc
        return client


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(exc: BaseException) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith("b'") else text


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        client.shutdown()


@dataclass(frozen=True)
class ParsedMessage:
    uid: int
    message_id: str
    thread_id: str | None
    subject: str | None
    sender: str | None
    recipients: list[str]
    received_at: datetime | None
    headers: dict[str, list[str]]
    body_text: str | None
    attachments: list[dict[str, Any]]


def _clean(text: str | None) -> str | None:
    """PostgreSQL text and JSONB refuse NUL characters."""
    return None if text is None else text.replace("\x00", "")


def _header(msg: EmailMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError):  # a malformed header the parser chokes on
        return None
    return _clean(str(value).strip()) if value is not None else None


def _body(msg: EmailMessage) -> str | None:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
        if part is None:
            return None
        content = part.get_content()
    except (LookupError, ValueError, AssertionError, KeyError):
        return None
    if not isinstance(content, str):
        return None
    content = content.replace("\r\n", "\n")  # IMAP sends CRLF lines
    if part.get_content_subtype() == "html":
        content = _TAGS.sub(" ", content)
    return _clean(content[:MAX_BODY_CHARS])


def _attachments(msg: EmailMessage) -> list[dict[str, Any]]:
    found = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        found.append(
            {
                "filename": _clean(part.get_filename()),
                "content_type": part.get_content_type(),
                "size": len(payload) if isinstance(payload, bytes) else 0,
            }
        )
    return found


def parse_message(uid: int, raw: bytes, internal_date: datetime | None = None) -> ParsedMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    message_id = _header(msg, "Message-ID") or f"<sha256-{hashlib.sha256(raw).hexdigest()}@cesar>"
    references = (_header(msg, "References") or "").split()
    thread_id = references[0] if references else _header(msg, "In-Reply-To") or message_id
    recipients = [
        _clean(address) or ""
        for _, address in getaddresses(
            [v for v in (_header(msg, "To"), _header(msg, "Cc")) if v is not None]
        )
        if address
    ]
    received_at: datetime | None = None
    try:
        date = msg.get("Date")
        received_at = getattr(date, "datetime", None)
    except (ValueError, TypeError, IndexError):
        received_at = None
    received_at = received_at or internal_date
    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    headers: dict[str, list[str]] = {}
    for name in msg:
        headers.setdefault(name.lower(), []).append(_header(msg, name) or "")
    return ParsedMessage(
        uid=uid,
        message_id=message_id[:998],
        thread_id=thread_id,
        subject=_header(msg, "Subject"),
        sender=_header(msg, "From"),
        recipients=recipients,
        received_at=received_at,
        headers=headers,
        body_text=_body(msg),
        attachments=_attachments(msg),
    )


# --- the IMAP side (blocking calls, run in a thread) ------------------------------------


def _select(client: IMAPClient, folder: str) -> int:
    status = client.select_folder(folder, readonly=True)
    return int(status[b"UIDVALIDITY"])


def _uids_after(client: IMAPClient, after: int) -> list[int]:
    # "n:*" always matches the highest UID even when it is below n: filter again
    return sorted(int(u) for u in client.search(["UID", f"{after + 1}:*"]) if int(u) > after)


def _fetch(client: IMAPClient, uids: Sequence[int]) -> list[ParsedMessage]:
    data = client.fetch(list(uids), ["BODY.PEEK[]", "INTERNALDATE"])
    messages = []
    for uid in uids:
        item = data.get(uid)
        if item is None or b"BODY[]" not in item:
            continue  # expunged between SEARCH and FETCH
        internal = item.get(b"INTERNALDATE")
        messages.append(
            parse_message(
                uid, item[b"BODY[]"], internal if isinstance(internal, datetime) else None
            )
        )
    return messages


# --- the database side ------------------------------------------------------------------


def _store(
    mailbox: str, messages: list[ParsedMessage], uid_validity: int, last_uid: int, now: datetime
) -> Callable[[asyncpg.Connection], Awaitable[int]]:
    async def work(conn: asyncpg.Connection) -> int:
        added = 0
        for m in messages:
            inserted = await conn.fetchval(
                INSERT_MESSAGE,
                mailbox,
                m.uid,
                m.message_id,
                m.thread_id,
                m.subject,
                m.sender,
                m.recipients,
                m.received_at,
                json.dumps(m.headers),
                m.body_text,
                json.dumps(m.attachments),
                now,
            )
            if inserted is None:
                await conn.execute(RENUMBER_MESSAGE, mailbox, m.message_id, m.uid, now)
            else:
                added += 1
        newest = max((m.received_at for m in messages if m.received_at), default=None)
        await conn.execute(ADVANCE_STATE, mailbox, last_uid, uid_validity, newest, added, now)
        return added

    return work


@dataclass
class _FolderResult:
    seen: int = 0
    added: int = 0
    rescanned: bool = False


async def _ingest_folder(
    ctx: JobContext, client: IMAPClient, account: ImapAccount, folder: str, limit: int
) -> _FolderResult:
    mailbox = account.mailbox(folder)
    result = _FolderResult()
    uid_validity = await asyncio.to_thread(_select, client, folder)
    async with ctx.db.connection() as conn:
        state = await conn.fetchrow(SELECT_STATE, mailbox)
    after = 0
    if state is not None and state["uid_validity"] == uid_validity:
        after = int(state["last_uid"] or 0)
    result.rescanned = state is not None and state["uid_validity"] not in (None, uid_validity)
    uids = (await asyncio.to_thread(_uids_after, client, after))[:limit]
    if not uids:
        # still record the folder's UIDVALIDITY (and the reset after a renumbering)
        await ctx.db.transaction(_store(mailbox, [], uid_validity, after, ctx.clock()))
    for start in range(0, len(uids), FETCH_BATCH):
        chunk = uids[start : start + FETCH_BATCH]
        messages = await asyncio.to_thread(_fetch, client, chunk)
        result.seen += len(messages)
        result.added += await ctx.db.transaction(
            _store(mailbox, messages, uid_validity, chunk[-1], ctx.clock())
        )
    await ctx.db.transaction(
        lambda conn: conn.execute(FINISH_STATE, mailbox, "ok", None, ctx.clock())
    )
    return result


async def _log_row(ctx: JobContext, now: datetime) -> UUID:
    async def work(conn: asyncpg.Connection) -> UUID:
        existing = await conn.fetchval(SELECT_LOG, ctx.job.id)
        if existing is not None:
            return UUID(str(existing))
        return UUID(str(await conn.fetchval(INSERT_LOG, SOURCE, ctx.job.id, now)))

    return await ctx.db.transaction(work)


async def _record_folder_error(ctx: JobContext, mailbox: str, message: str) -> None:
    # when the database itself is the problem, ingestion_log says so if it can
    with contextlib.suppress(CesarError, asyncpg.PostgresError, OSError):
        await ctx.db.transaction(
            lambda conn: conn.execute(FINISH_STATE, mailbox, "error", message, ctx.clock())
        )


async def ingest(ctx: JobContext, payload: EmailIngestPayload) -> dict[str, Any]:
    config = ctx.settings
    assert isinstance(config, WorkerConfig)
    account = ImapAccount.from_config(config)
    folders = payload.folders or config.email_folders()
    log_id = await _log_row(ctx, ctx.clock())
    errors: list[dict[str, Any]] = []
    per_folder: dict[str, dict[str, Any]] = {}
    seen = added = 0
    try:
        client = await asyncio.to_thread(account.connect)
    except (MailboxError, PermanentJobError) as exc:
        await _finish_log(ctx, log_id, "failed", 0, 0, [{"error": str(exc)}], str(exc), {})
        raise
    try:
        for folder in folders:
            try:
                result = await _ingest_folder(ctx, client, account, folder, payload.max_messages)
            except (IMAPClientError, OSError, CesarError, asyncpg.PostgresError) as exc:
                message = f"{folder}: {_text(exc)}"
                errors.append({"folder": folder, "error": _text(exc)})
                await _record_folder_error(ctx, account.mailbox(folder), message)
                if isinstance(exc, OSError):
                    break  # the connection is gone: the other folders would fail the same way
                continue
            seen, added = seen + result.seen, added + result.added
            per_folder[folder] = {
                "seen": result.seen,
                "added": result.added,
                "rescanned": result.rescanned,
            }
    finally:
        await asyncio.to_thread(_logout, client)
    failed = len(errors)
    status = "succeeded" if not failed else ("partial" if per_folder else "failed")
    summary = "; ".join(f"{e['folder']}: {e['error']}" for e in errors) or None
    details = {"folders": per_folder, "account": account.mailbox("")}
    await _finish_log(ctx, log_id, status, seen, added, errors, summary, details, failed)
    if status == "failed":
        raise MailboxError(f"e-mail ingest failed ({summary}); ingestion_log {log_id}")
    return {
        "ingestion_log_id": str(log_id),
        "status": status,
        "messages_seen": seen,
        "messages_added": added,
        "folders": per_folder,
    }


async def _finish_log(
    ctx: JobContext,
    log_id: UUID,
    status: str,
    seen: int,
    added: int,
    errors: list[dict[str, Any]],
    message: str | None,
    details: dict[str, Any],
    failed: int = 0,
) -> None:
    await ctx.db.transaction(
        lambda conn: conn.execute(
            FINISH_LOG,
            log_id,
            status,
            seen,
            seen,
            failed,
            json.dumps(errors[:MAX_ERRORS_RECORDED]),
            message,
            json.dumps({**details, "added": added}),
            ctx.clock(),
        )
    )


JOB = JobType(builtin.EMAIL_INGEST, ingest)
