"""ESP webhooks over real HTTP: Amazon SES events through SNS and Mailgun's events.

Amazon's servers cannot run here, so the test is its own SNS: it makes a certificate and
key, signs messages exactly as SNS documents it, and serves the certificate through the
verifier's injectable fetcher (the URL rules are still checked). Mailgun is signed with a
signing key from the environment, as Mailgun does it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from notifier.bounces.sns import SnsRejected, SnsVerifier, check_sns_url, string_to_sign
from notifier.config import load_config
from notifier.db import read_session
from notifier.models import Subscriber
from notifier.web import create_app
from tests.conftest import write_config
from tests.web_server import running

TOPIC = "arn:aws:sns:eu-central-1:123456789012:ses-events"
CERT_URL = "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"
MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"


class FakeSns:
    """Signs like SNS; ``fetch`` serves its certificate and records every URL asked for."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.certificate.public_bytes(serialization.Encoding.PEM) if url == CERT_URL else b"confirmed"

    def message(self, kind: str = "Notification", version: str = "2", **fields: Any) -> dict[str, Any]:
        message = {"Type": kind, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": TOPIC,
                   "Timestamp": "2026-12-01T22:00:00.000Z", "SignatureVersion": version, "SigningCertURL": CERT_URL,
                   **fields}  # fmt: skip
        if kind == "SubscriptionConfirmation":
            message.setdefault("Token", "2336412f37")
            message.setdefault("SubscribeURL", SUBSCRIBE_URL)
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        return message


def ses(kind: str, recipient: str, **detail: Any) -> str:
    mail = {"messageId": "0100018c-ses", "headers": [{"name": "Message-ID", "value": "<foreign@x>"}]}
    if kind == "Bounce":
        body = {"bounce": {"bounceType": detail.get("bounce_type", "Permanent"), "bounceSubType": "General",
                           "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                                                  "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}  # fmt: skip
    else:
        body = {
            "complaint": {
                "complainedRecipients": [{"emailAddress": recipient}],
                "complaintFeedbackType": "abuse",
            }
        }
    return json.dumps({"notificationType": kind, "mail": mail, **body})


@pytest.fixture
def sns_fake() -> FakeSns:
    return FakeSns()


@pytest.fixture
def web(
    tmp_path: Path,
    database_url: str,
    config_path: Path,
    engine: Any,
    sns_fake: FakeSns,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[httpx.Client]:
    monkeypatch.setenv("NOTIFIER_MAILGUN_KEY", MAILGUN_KEY)
    path = write_config(
        tmp_path,
        database_url,
        bounces={"ses_topic_arns": [TOPIC], "mailgun_signing_key_env": "NOTIFIER_MAILGUN_KEY"},
    )
    app = create_app(load_config(path), engine)
    app.state.sns_verifier = SnsVerifier([TOPIC], fetch=sns_fake.fetch)
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


def status_of(engine: Any, subscriber: Subscriber) -> str:
    with read_session(engine) as session:
        return session.get(Subscriber, subscriber.id).status  # type: ignore[union-attr]


def test_an_ses_complaint_through_sns_unsubscribes_the_subscriber(
    web: httpx.Client, engine: Any, sns_fake: FakeSns, make_subscriber: Callable[..., Subscriber]
) -> None:
    angry, dead = make_subscriber(), make_subscriber()
    response = web.post(
        "/webhooks/ses", content=json.dumps(sns_fake.message(Message=ses("Complaint", angry.email)))
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"type": "Notification", "recorded": 1}
    assert status_of(engine, angry) == "unsubscribed"
    bounce = sns_fake.message(
        version="1", Message=ses("Bounce", dead.email), Subject="Amazon SES Email Event"
    )
    assert web.post("/webhooks/ses", content=json.dumps(bounce)).status_code == 200
    assert status_of(engine, dead) == "bounced"
    assert sns_fake.fetched == [CERT_URL]  # fetched once, then cached


def test_an_ses_transient_bounce_is_only_soft(
    web: httpx.Client, engine: Any, sns_fake: FakeSns, make_subscriber: Callable[..., Subscriber]
) -> None:
    busy = make_subscriber()
    message = sns_fake.message(Message=ses("Bounce", busy.email, bounce_type="Transient"))
    assert web.post("/webhooks/ses", content=json.dumps(message)).status_code == 200
    assert status_of(engine, busy) == "active"


def test_forged_or_foreign_sns_messages_are_refused(
    web: httpx.Client, engine: Any, sns_fake: FakeSns, make_subscriber: Callable[..., Subscriber]
) -> None:
    victim = make_subscriber()
    tampered = sns_fake.message(Message=ses("Complaint", "someone@example.org"))
    tampered["Message"] = ses("Complaint", victim.email)
    assert web.post("/webhooks/ses", content=json.dumps(tampered)).status_code == 403
    other_topic = sns_fake.message(
        Message=ses("Complaint", victim.email), TopicArn=TOPIC.replace("ses-events", "theirs")
    )
    assert web.post("/webhooks/ses", content=json.dumps(other_topic)).status_code == 403
    elsewhere = sns_fake.message(
        Message=ses("Complaint", victim.email), SigningCertURL="https://evil.example/sns.pem"
    )
    response = web.post("/webhooks/ses", content=json.dumps(elsewhere))
    assert response.status_code == 403 and "amazonaws.com" in response.json()["error"]["message"]
    assert web.post("/webhooks/ses", content=b"{not json").status_code == 400
    assert status_of(engine, victim) == "active"


def test_an_sns_subscription_is_confirmed_by_visiting_its_subscribe_url(
    web: httpx.Client, sns_fake: FakeSns
) -> None:
    response = web.post(
        "/webhooks/ses", content=json.dumps(sns_fake.message("SubscriptionConfirmation", Message="confirm"))
    )
    assert response.status_code == 200 and response.json()["type"] == "SubscriptionConfirmation"
    assert sns_fake.fetched == [CERT_URL, SUBSCRIBE_URL]


@pytest.mark.parametrize(
    "url",
    ["http://sns.us-east-1.amazonaws.com/c.pem", "https://sns.us-east-1.amazonaws.com.evil.example/c.pem",
     "https://evil.example/sns.us-east-1.amazonaws.com/c.pem", "https://sns.us-east-1.amazonaws.com:8443/c.pem",
     "https://s3.amazonaws.com/c.pem", "https://sns.us-east-1.amazonaws.com/c.txt"],
)  # fmt: skip
def test_only_https_certificate_urls_on_sns_hosts_are_fetched(url: str) -> None:
    fetched: list[str] = []
    verifier = SnsVerifier([TOPIC], fetch=lambda u: fetched.append(u) or b"")  # type: ignore[func-returns-value]
    with pytest.raises(SnsRejected):
        verifier.certificate(url)
    assert fetched == []
    assert check_sns_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem")


def mailgun_body(
    event: dict[str, Any], *, key: str = MAILGUN_KEY, timestamp: int | None = None, token: str = "t0k3n"
) -> bytes:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event}
    ).encode()


def test_mailgun_failures_and_complaints_with_a_valid_signature_are_recorded(
    web: httpx.Client, engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    dead, angry, busy = make_subscriber(), make_subscriber(), make_subscriber()
    failed = {"event": "failed", "severity": "permanent", "recipient": dead.email,
              "delivery-status": {"code": 550, "description": "No such mailbox"}, "message": {"headers": {"message-id": "x@y"}}}  # fmt: skip
    assert web.post("/webhooks/mailgun", content=mailgun_body(failed, token="a1")).json() == {"recorded": 1}
    assert (
        web.post(
            "/webhooks/mailgun",
            content=mailgun_body({"event": "complained", "recipient": angry.email}, token="a2"),
        ).status_code
        == 200
    )
    temporary = {**failed, "severity": "temporary", "recipient": busy.email}
    assert web.post("/webhooks/mailgun", content=mailgun_body(temporary, token="a3")).status_code == 200
    assert web.post("/webhooks/mailgun", content=mailgun_body({"event": "delivered"}, token="a4")).json() == {
        "recorded": 0
    }
    assert [status_of(engine, s) for s in (dead, angry, busy)] == ["bounced", "unsubscribed", "active"]


def test_mailgun_requests_signed_wrongly_late_or_twice_are_refused(
    web: httpx.Client, engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    victim = make_subscriber()
    event = {"event": "complained", "recipient": victim.email}
    assert (
        web.post("/webhooks/mailgun", content=mailgun_body(event, key="key-wrong", token="b1")).status_code
        == 403
    )
    stale = mailgun_body(event, timestamp=int(time.time()) - 3600, token="b2")
    assert web.post("/webhooks/mailgun", content=stale).status_code == 403
    assert web.post("/webhooks/mailgun", content=b"[]").status_code == 400
    assert status_of(engine, victim) == "active"
    once = mailgun_body(event, token="b3")
    assert web.post("/webhooks/mailgun", content=once).status_code == 200
    replay = web.post("/webhooks/mailgun", content=once)
    assert replay.status_code == 403 and "replayed" in replay.json()["error"]["message"]


def test_endpoints_of_providers_not_configured_answer_404(config: Any, engine: Any) -> None:
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=20) as client:
        assert client.post("/webhooks/ses", content=b"{}").status_code == 404
        assert client.post("/webhooks/mailgun", content=b"{}").status_code == 404
