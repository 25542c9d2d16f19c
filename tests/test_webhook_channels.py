"""Delivery channels on SQLite and PostgreSQL: EMAIL against a real ``aiosmtpd`` server on
127.0.0.1, SLACK against the real HTTP receiver, and SLACK hook urls kept out of every answer,
audit row and the database in plaintext."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from standardwebhooks.webhooks import Webhook

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.enums import DeliveryChannel, DeliveryStatus
from interlink.core.logging import redact_text
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks.channels import SmtpConfig
from interlink.webhooks.channels.slack import MAX_TEXT_BLOCK, redact_url
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import free_port, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

SENDER = "Interlink <hooks@interlink.test>"
SMTP_USER, SMTP_PASSWORD = "relay-user", "relay-Pa55word"
TOKEN = "XyZsecretToken987abc"


# -- an SMTP server on 127.0.0.1 -------------------------------------------------------------------


@dataclass
class Mailbox:
    """An ``aiosmtpd`` handler: keeps accepted messages; refuses what a test scripts."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 2.0.0 Queued as 4711"

    def parsed(self, index: int = -1) -> EmailMessage:
        message = email.message_from_bytes(self.messages[index][2], policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox

    def config(self, **overrides: Any) -> SmtpConfig:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "from_address": SENDER,
            "timeout_seconds": 10.0,
        }
        values.update(overrides)
        return SmtpConfig(**values)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)  # unhandled: the server answers 535

    # Logging in is offered (over plain text: a test server) but not required.
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    await asyncio.to_thread(controller.start)
    try:
        yield SmtpServer(port, mailbox)
    finally:
        await asyncio.to_thread(controller.stop)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: SmtpServer) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        allowed_target_networks=["127.0.0.0/8"],
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_from=SENDER,
    )


@pytest.fixture
def actor(admin: BootstrapResult) -> Actor:
    return system_actor(admin.tenant_id)


def worker_for(runtime: Runtime, smtp: SmtpConfig | None) -> DeliveryWorker:
    config = DeliveryConfig(concurrency=8, batch_size=8, lease_seconds=30, poll_interval=0.05)
    return DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config, smtp=smtp)


# -- helpers ---------------------------------------------------------------------------------------


async def create_endpoint(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/endpoints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def send(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("type", "invoice.paid")
    body.setdefault("payload", {"id": "inv_1", "amount": 42})
    response = await client.post("/v1/events", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def deliveries(runtime: Runtime, endpoint_id: str) -> list[WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        return list((await session.scalars(stmt.order_by(WebhookDelivery.id))).all())


async def attempts(runtime: Runtime, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = (
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.attempt_number)
        )
        return list((await session.scalars(stmt)).all())


async def endpoint_row(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
    assert row is not None
    return row


async def secrets_of(runtime: Runtime, endpoint_id: str) -> list[str]:
    async with runtime.db.unit_of_work(write=False) as session:
        return await active_secrets(session, runtime.keyring, endpoint_id)


def email_endpoint(**config: Any) -> dict[str, Any]:
    return {"channel": "EMAIL", "channelConfig": {"to": ["ops@example.com"], **config}}


# -- EMAIL -----------------------------------------------------------------------------------------


async def test_email_delivery_is_a_signed_message(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    made = await create_endpoint(
        client,
        admin_headers,
        **email_endpoint(
            to=["ops@example.com", "billing@example.com"],
            subjectTemplate="{type} {{#{eventId}}} attempt {attempt}",
        ),
    )
    assert made["url"] == "mailto:ops@example.com,billing@example.com"
    event = await send(client, admin_headers, payload={"id": "inv_1", "amount": 42, "note": "ünïcode"})

    await worker_for(runtime, runtime.smtp).drain()  # the runtime's settings reach the channel

    [(mail_from, rcpt_tos, _raw)] = smtp.mailbox.messages
    assert mail_from == "hooks@interlink.test"
    assert rcpt_tos == ["ops@example.com", "billing@example.com"]
    message = smtp.mailbox.parsed()
    assert message["Subject"] == f"invoice.paid {{#{event['id']}}} attempt 1"
    assert message["From"] == SENDER and message["To"] == "ops@example.com, billing@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    [delivery] = await deliveries(runtime, made["id"])
    assert message["Message-ID"] == f"<{delivery.id}@interlink.test>"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content_type() == "text/plain"
    text = body.get_content()
    document = json.loads(text)
    assert document["type"] == "invoice.paid"
    assert document["data"] == {"id": "inv_1", "amount": 42, "note": "ünïcode"}
    assert text.startswith('{\n  "type"')  # pretty-printed for people
    headers = {name: str(message[name]) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    assert headers["webhook-id"] == event["id"]
    [secret] = await secrets_of(runtime, made["id"])
    Webhook(secret).verify(text.encode(), headers)  # raises if the signature does not verify

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.last_status_code == 250
    [attempt] = await attempts(runtime, delivery.id)
    assert attempt.succeeded and attempt.response_status == 250
    assert attempt.response_body is not None and "Queued as 4711" in attempt.response_body
    assert attempt.request_headers["Subject"] == message["Subject"]
    assert attempt.request_headers["webhook-signature"] == "[redacted]"
    assert attempt.error_class is None and attempt.error_message is None


async def test_immediate_email_delivery_through_the_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    await create_endpoint(client, admin_headers, **email_endpoint())
    event = await send(client, admin_headers, immediate=True)
    assert [d["status"] for d in event["deliveries"]] == ["DELIVERED"]
    assert len(smtp.mailbox.messages) == 1


async def test_smtp_refusals_are_retried_with_their_reply_code(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    made = await create_endpoint(client, admin_headers, **email_endpoint(), retrySchedule=[60, 60, 60])
    await send(client, admin_headers)
    smtp.mailbox.data_replies = ["554 5.7.1 Message rejected as spam", "451 4.3.0 Try again later"]
    worker = worker_for(runtime, smtp.config())

    await worker.drain()
    [row] = await deliveries(runtime, made["id"])
    assert row.status is DeliveryStatus.RETRYING and row.attempts == 1
    assert (row.last_status_code, row.last_error_class) == (554, "smtp_5xx")
    wait = (row.next_attempt_at - clock.utcnow()).total_seconds()
    assert 45 <= wait <= 75, wait

    clock.shift(timedelta(seconds=80))
    await worker.drain()
    [row] = await deliveries(runtime, made["id"])
    assert (row.status, row.last_status_code, row.last_error_class) == (
        DeliveryStatus.RETRYING,
        451,
        "smtp_4xx",
    )

    clock.shift(timedelta(seconds=80))
    await worker.drain()
    [row] = await deliveries(runtime, made["id"])
    assert row.status is DeliveryStatus.DELIVERED and row.attempts == 3
    tries = await attempts(runtime, row.id)
    assert [(a.response_status, a.error_class) for a in tries] == [
        (554, "smtp_5xx"),
        (451, "smtp_4xx"),
        (250, None),
    ]
    assert tries[0].response_body == "5.7.1 Message rejected as spam"
    assert tries[0].error_message is not None and "554" in tries[0].error_message
    # Every attempt of the delivery carries the same Message-ID: a retried message is recognisable.
    assert {a.request_headers["Message-ID"] for a in tries} == {f"<{row.id}@interlink.test>"}
    assert smtp.mailbox.parsed()["Message-ID"] == f"<{row.id}@interlink.test>"


async def test_smtp_login(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    made = await create_endpoint(client, admin_headers, **email_endpoint())
    await send(client, admin_headers)
    await worker_for(runtime, smtp.config(username=SMTP_USER, password="wrong")).drain()
    [row] = await deliveries(runtime, made["id"])
    assert (row.status, row.last_status_code, row.last_error_class) == (
        DeliveryStatus.RETRYING,
        535,
        "smtp_5xx",
    )
    [attempt] = await attempts(runtime, row.id)
    assert attempt.error_message is not None and "wrong" not in attempt.error_message
    clock.shift(timedelta(seconds=10))
    config = smtp.config(username=SMTP_USER, password=SMTP_PASSWORD)
    assert SMTP_PASSWORD not in repr(config)
    await worker_for(runtime, config).drain()
    [row] = await deliveries(runtime, made["id"])
    assert row.status is DeliveryStatus.DELIVERED and len(smtp.mailbox.messages) == 1


async def test_refused_recipients_are_recorded(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    smtp.mailbox.refuse_rcpt = {
        "gone@example.com": "550 5.1.1 No such user",
        "full@example.com": "452 4.2.2 Mailbox full",
    }
    partial = await create_endpoint(
        client, admin_headers, **email_endpoint(to=["ops@example.com", "gone@example.com"])
    )
    refused = await create_endpoint(
        client, admin_headers, **email_endpoint(to=["gone@example.com", "full@example.com"])
    )
    await send(client, admin_headers)
    await worker_for(runtime, smtp.config()).drain()

    [row] = await deliveries(runtime, partial["id"])
    assert row.status is DeliveryStatus.DELIVERED  # accepted for the others: not sent twice to them
    [attempt] = await attempts(runtime, row.id)
    assert attempt.succeeded and attempt.error_message is not None
    assert "gone@example.com: 550" in attempt.error_message and "1 of 2" in attempt.error_message
    assert [rcpt for _sender, rcpt, _raw in smtp.mailbox.messages] == [["ops@example.com"]]

    [row] = await deliveries(runtime, refused["id"])
    assert row.status is DeliveryStatus.RETRYING
    assert (row.last_status_code, row.last_error_class) == (452, "smtp_4xx")  # one refusal is transient
    [attempt] = await attempts(runtime, row.id)
    assert attempt.response_body is not None
    assert (
        "gone@example.com: 550" in attempt.response_body and "full@example.com: 452" in attempt.response_body
    )


async def test_smtp_transport_failures_are_classified(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, smtp: SmtpServer
) -> None:
    made = await create_endpoint(client, admin_headers, **email_endpoint())
    await send(client, admin_headers)
    outcomes = {}
    for name, config in {
        "down": smtp.config(port=free_port()),
        "tls": smtp.config(security="tls"),  # TLS spoken to a plain-text server
        "starttls": smtp.config(security="starttls"),  # the server does not offer STARTTLS
        "dns": smtp.config(host="smtp.invalid"),
    }.items():
        await worker_for(runtime, config).drain()
        [row] = await deliveries(runtime, made["id"])
        [*_, attempt] = await attempts(runtime, row.id)
        outcomes[name] = (row.status, attempt.error_class, attempt.error_message or "")
        clock.shift(timedelta(days=1))
    assert outcomes["down"][:2] == (DeliveryStatus.RETRYING, "connect")
    assert outcomes["tls"][:2] == (DeliveryStatus.RETRYING, "tls")
    assert outcomes["starttls"][:2] == (DeliveryStatus.RETRYING, "tls")
    assert "STARTTLS" in outcomes["starttls"][2]
    assert outcomes["dns"][:2] == (DeliveryStatus.RETRYING, "dns")
    assert smtp.mailbox.messages == []


async def test_without_smtp_email_endpoints_are_created_and_deliveries_say_why(
    actor: Actor, runtime: Runtime, db_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    plain = Runtime(make_settings(db_url, tmp_path / "plain"))  # no INTERLINK_SMTP_* at all
    try:
        assert plain.smtp.missing == ["INTERLINK_SMTP_HOST", "INTERLINK_SMTP_FROM"]
        service = Endpoints(plain.keyring, plain.allowed_target_networks)
        async with plain.db.unit_of_work() as session:
            made = await service.create(
                session,
                actor,
                EndpointSpec(channel=DeliveryChannel.EMAIL, channel_config={"to": ["ops@example.com"]}),
            )
            await ingest(session, actor, EventSpec(type="invoice.paid", payload={"n": 1}))
        await plain.make_delivery_worker().drain()
    finally:
        await plain.stop()
    [row] = await deliveries(runtime, made.id)
    assert (row.status, row.last_error_class) == (DeliveryStatus.RETRYING, "unconfigured")
    [attempt] = await attempts(runtime, row.id)
    assert attempt.error_message is not None
    assert "INTERLINK_SMTP_HOST" in attempt.error_message and "INTERLINK_SMTP_FROM" in attempt.error_message
    # Once a worker with SMTP settings runs, the waiting delivery goes out.
    clock.shift(timedelta(seconds=10))
    await worker_for(runtime, runtime.smtp).drain()
    [row] = await deliveries(runtime, made.id)
    assert row.status is DeliveryStatus.DELIVERED and len(smtp.mailbox.messages) == 1


@pytest.mark.parametrize(
    "template",
    ["{payload.amount}", "{type.__class__}", "{type[0]}", "{type!r}", "{type:>10}", "{nope}", "{", "}"],
)
async def test_subject_templates_are_checked_when_saved(
    client: httpx.AsyncClient, admin_headers: dict[str, str], template: str
) -> None:
    response = await client.post(
        "/v1/endpoints", json=email_endpoint(subjectTemplate=template), headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["channelConfig.subjectTemplate"]


# -- SLACK -----------------------------------------------------------------------------------------


def slack_url(receiver: Receiver, token: str = TOKEN, *answers: Answer) -> str:
    return receiver.script(f"/services/T0001/B0002/{token}", *(answers or (Answer(200, body="ok"),)))


async def test_slack_message_shape(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    made = await create_endpoint(
        client,
        admin_headers,
        channel="SLACK",
        url=slack_url(receiver),
        channelConfig={"username": "billing-bot", "iconEmoji": ":moneybag:"},
    )
    small = await send(client, admin_headers, payload={"id": "inv_1", "note": "<b>&</b>"})
    large = await send(client, admin_headers, payload={"blob": "x" * 10_000})
    await worker_for(runtime, None).drain()

    requests = {r.json()["text"]: r for r in receiver.requests}
    first = requests[f"invoice.paid ({small['id']})"]
    message = first.json()
    assert message["username"] == "billing-bot" and message["icon_emoji"] == ":moneybag:"
    assert first.headers["content-type"].startswith("application/json")
    assert not any(h.startswith("webhook-") for h in first.headers)  # Slack verifies nothing
    header, meta, code = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "invoice.paid"}}
    assert small["id"] in meta["text"]["text"]
    assert code["text"]["type"] == "mrkdwn" and code["text"]["text"].startswith("```")
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in code["text"]["text"]  # mrkdwn escaping

    blocks = requests[f"invoice.paid ({large['id']})"].json()["blocks"]
    assert all(len(b["text"]["text"]) <= MAX_TEXT_BLOCK for b in blocks if "text" in b)
    assert blocks[2]["text"]["text"].endswith("…\n```")
    assert "Truncated" in blocks[3]["elements"][0]["text"]

    rows = await deliveries(runtime, made["id"])
    assert {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    [attempt] = await attempts(runtime, rows[0].id)
    assert attempt.response_status == 200 and attempt.response_body == "ok"
    assert attempt.request_headers["Content-Type"].startswith("application/json")


async def test_a_transformation_can_write_the_slack_message(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    await create_endpoint(
        client,
        admin_headers,
        channel="SLACK",
        url=slack_url(receiver),
        channelConfig={"username": "bot"},
        transformation='{"text": "Paid: " & $string(payload.amount)}',
    )
    await send(client, admin_headers)
    await worker_for(runtime, None).drain()
    [request] = receiver.requests
    assert request.json() == {"text": "Paid: 42", "username": "bot"}


@pytest.mark.parametrize(
    ("answer", "disabled"),
    [
        (Answer(410, body="channel_is_archived"), True),
        (Answer(404, body="no_service"), True),
        (Answer(403, body="action_prohibited"), True),
        (Answer(404, body="<html>not found</html>"), False),  # a proxy's 404: retried
        (Answer(500, body="internal_error"), False),
    ],
)
async def test_slack_answers_that_mean_the_hook_is_gone_disable_it(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    receiver: Receiver,
    answer: Answer,
    disabled: bool,
) -> None:
    made = await create_endpoint(
        client, admin_headers, channel="SLACK", url=slack_url(receiver, TOKEN, answer)
    )
    await send(client, admin_headers)
    await worker_for(runtime, None).drain()

    [row] = await deliveries(runtime, made["id"])
    endpoint = await endpoint_row(runtime, made["id"])
    assert row.last_status_code == answer.status
    if disabled:
        assert row.status is DeliveryStatus.FAILED
        assert endpoint.enabled is False and endpoint.disabled_reason is not None
        assert answer.body in endpoint.disabled_reason
        audit_rows = await audit(runtime, made["id"])
        assert "endpoint.disabled" in {a.action for a in audit_rows}
    else:
        assert row.status is DeliveryStatus.RETRYING and endpoint.enabled is True


async def test_slack_rate_limit_honours_retry_after(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    url = slack_url(
        receiver, TOKEN, Answer(429, {"Retry-After": "9"}, "rate_limited"), Answer(200, body="ok")
    )
    made = await create_endpoint(client, admin_headers, channel="SLACK", url=url, retrySchedule=[600])
    await send(client, admin_headers)
    worker = worker_for(runtime, None)
    await worker.drain()
    [row] = await deliveries(runtime, made["id"])
    assert (row.status, row.last_status_code, row.last_error_class) == (
        DeliveryStatus.RETRYING,
        429,
        "http_4xx",
    )
    wait = (row.next_attempt_at - clock.utcnow()).total_seconds()
    assert 7 <= wait <= 9.5, wait  # Retry-After, not the schedule's 600 s
    clock.shift(timedelta(seconds=10))
    await worker.drain()
    [row] = await deliveries(runtime, made["id"])
    assert row.status is DeliveryStatus.DELIVERED and len(receiver.requests) == 2


async def audit(runtime: Runtime, resource_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(AuditEvent).where(AuditEvent.resource_id == resource_id).order_by(AuditEvent.id)
        return list((await session.scalars(stmt)).all())


async def test_slack_hook_urls_never_leave_in_plaintext(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    url = slack_url(receiver)
    redacted = f"{receiver.url}/services/T0001/B0002/[redacted]"
    made = await create_endpoint(client, admin_headers, channel="SLACK", url=url)
    assert made["url"] == redacted
    endpoint_path = f"/v1/endpoints/{made['id']}"
    shown = await client.get(endpoint_path, headers=admin_headers)
    listed = await client.get("/v1/endpoints", headers=admin_headers)
    assert shown.json()["url"] == redacted
    assert TOKEN not in shown.text and TOKEN not in listed.text

    # Sending the shown form back changes nothing; deliveries still reach the real hook.
    same = await client.patch(
        endpoint_path, json={"url": redacted, "description": "billing"}, headers=admin_headers
    )
    assert same.status_code == 200, same.text
    await send(client, admin_headers)
    await worker_for(runtime, None).drain()
    assert [r.path for r in receiver.requests] == [f"/services/T0001/B0002/{TOKEN}"]

    # A new hook with the same workspace and channel ids looks the same but is audited as a change.
    new_token = "AnotherSecret654xyz"
    moved = await client.patch(
        endpoint_path, json={"url": slack_url(receiver, new_token)}, headers=admin_headers
    )
    assert moved.status_code == 200 and moved.json()["url"] == redacted
    await send(client, admin_headers)
    await worker_for(runtime, None).drain()
    assert receiver.requests[-1].path == f"/services/T0001/B0002/{new_token}"

    rows = await audit(runtime, made["id"])
    assert [r.action for r in rows][:3] == ["endpoint.created", "endpoint.updated", "endpoint.updated"]
    assert rows[2].changes["url"] == {"old": redacted, "new": redacted}
    everything = json.dumps([r.changes for r in rows])
    assert TOKEN not in everything and new_token not in everything

    stored = await endpoint_row(runtime, made["id"])
    async with runtime.db.unit_of_work(write=False) as session:
        raw = (
            await session.execute(
                sa.text("SELECT * FROM webhook_endpoints WHERE id = :id"), {"id": made["id"]}
            )
        ).one()
    assert stored.url == redacted and stored.target_ciphertext
    assert not any(isinstance(v, str) and (TOKEN in v or new_token in v) for v in raw)


async def test_slack_errors_do_not_reveal_the_hook(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0001/B0002/{TOKEN}"
    made = await create_endpoint(client, admin_headers, channel="SLACK", url=url)
    await send(client, admin_headers)
    await worker_for(runtime, None).drain()
    [row] = await deliveries(runtime, made["id"])
    assert row.status is DeliveryStatus.RETRYING and row.last_error_class == "connect"
    listed = await client.get(f"/v1/deliveries/{row.id}/attempts", headers=admin_headers)
    assert listed.status_code == 200 and listed.json()["data"]
    assert TOKEN not in listed.text


def test_redaction_keeps_scheme_host_and_ids() -> None:
    assert (
        redact_url("https://hooks.slack.com/services/T0001/B0002/abcdef?x=1#y")
        == "https://hooks.slack.com/services/T0001/B0002/[redacted]"
    )
    assert redact_url(redact_url("https://hooks.slack.com/services/T/B/abc")) == (
        "https://hooks.slack.com/services/T/B/[redacted]"
    )
    assert redact_url("https://example.com") == "https://example.com/[redacted]"
    assert TOKEN not in redact_text(f"posting to https://hooks.slack.com/services/T1/B2/{TOKEN} failed")
