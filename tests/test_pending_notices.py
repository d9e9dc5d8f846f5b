"""Status notices owed, not written: a declare records one pending notice for the whole
audience and the senders write its outbox rows a claim at a time. Counted at a real SMTP
server (aiosmtpd on 127.0.0.1), on SQLite and PostgreSQL: everyone gets exactly one notice,
the newest, whatever happens to the incident while the rows are being written."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlmodel import select

from notifier import incidents, outbox
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.models import Message, utcnow
from notifier.outbox import claims, progress
from notifier.outbox.queueing import materialise
from tests.conftest import mail_config, recipients


def _config(config: Any, server: Any, tmp_path: Path, **mailing: Any) -> Any:
    return mail_config(tmp_path / "sending", config.notifier.database, server.port, mailing=mailing)


def _status_rows(engine: Any) -> list[Message]:
    with read_session(engine) as session:
        return list(session.exec(select(Message).where(Message.kind == "status").order_by(Message.id)).all())


def _write_out(engine: Any, limit: int) -> int:
    with write_session(engine) as session:
        return materialise(session, limit, utcnow())


def _declare(engine: Any, cfg: Any, regions: list[str], message: str = "Ищем причину") -> int:
    with write_session(engine) as session:
        result = incidents.declare(session, cfg, title="Сбой отчётности", regions=regions, message=message)
    assert result.incident.id is not None
    return result.incident.id


def _texts(server: Any) -> list[str]:
    return [
        email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
        for _, _, raw in server.received
    ]


def test_declare_owes_the_notice_and_senders_write_it_out_a_claim_at_a_time(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config(config, smtp_server, tmp_path, batch_size=10)
    addresses = {make_subscriber(region="66").email for _ in range(23)}
    make_subscriber(region="66", email=None)  # phone only: owed no e-mail
    with write_session(engine) as session:
        declared = incidents.declare(session, cfg, title="Сбой", regions=["66"], message="Ищем причину")
    ref = declared.incident.id
    assert declared.queued["status"] == 23 and declared.affected == 24
    assert _status_rows(engine) == []  # nothing written per member at declare
    with read_session(engine) as session:
        assert outbox.counts(session, ref)["status"] == {"queued": 23}
        (mailing,) = [m for m in progress.mailings(session, ref, utcnow()) if m.kind == "status"]
        assert (mailing.total, mailing.waiting, mailing.sent) == (23, 23, 0)
    assert claims.due_count(engine, utcnow()) == 23

    presence = claims.Presence.here()
    presence.register(engine, utcnow())
    claimed = claims.claim(engine, presence, 10, utcnow(), cfg.mailing.heartbeat_timeout).ids
    assert len(claimed) == 10 and len(_status_rows(engine)) == 10  # a claim's worth, no more
    with read_session(engine) as session:
        assert outbox.counts(session, ref)["status"] == {"sending": 10, "queued": 13}
    claims.release(engine, presence.name, claimed)
    presence.leave(engine)

    report = asyncio.run(send_due(engine, cfg))
    assert report.sent == 23
    assert recipients(smtp_server) == Counter({address: 1 for address in addresses})
    assert asyncio.run(send_due(engine, cfg)).sent == 0
    with read_session(engine) as session:
        assert outbox.counts(session, ref)["status"] == {"sent": 23}


def test_a_wider_scope_while_the_notice_is_being_written_out_reaches_everyone_once(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config(config, smtp_server, tmp_path)
    members = [make_subscriber(region="66" if n % 2 else "74").email for n in range(20)]  # ids interleaved
    ref = _declare(engine, cfg, ["66"])
    assert _write_out(engine, 4) == 4  # the senders are part way through region 66
    with write_session(engine) as session:
        widened = incidents.widen_scope(session, cfg, ref, add_regions=["74"], add_services=[])
    assert widened.added == 10 and widened.queued["status"] == 10
    with read_session(engine) as session:
        assert outbox.counts(session, ref)["status"] == {"queued": 20}

    assert asyncio.run(send_due(engine, cfg)).sent == 20
    assert recipients(smtp_server) == Counter({address: 1 for address in members})


def test_a_newer_update_while_the_notice_is_being_written_out_leaves_only_the_newest(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config(config, smtp_server, tmp_path)
    members = [make_subscriber(region="66").email for _ in range(10)]
    ref = _declare(engine, cfg, ["66"], message="Ищем причину")
    assert _write_out(engine, 4) == 4
    with write_session(engine) as session:
        updated = incidents.post_update(session, cfg, ref, status="identified", message="Причина: отказ диска")
    assert updated.queued["status"] == 10
    states = Counter((m.update_id, m.state) for m in _status_rows(engine))
    assert sum(n for (_, state), n in states.items() if state == "cancelled") == 4  # the 4 written ones

    assert asyncio.run(send_due(engine, cfg)).sent == 10
    assert recipients(smtp_server) == Counter({address: 1 for address in members})
    assert all("Причина: отказ диска" in text for text in _texts(smtp_server))


def test_a_resolve_while_the_notice_is_being_written_out_sends_no_more_of_it(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config(config, smtp_server, tmp_path)
    for _ in range(10):
        make_subscriber(region="66")
    ref = _declare(engine, cfg, ["66"])
    assert _write_out(engine, 3) == 3
    with write_session(engine) as session:
        resolved = incidents.resolve(session, cfg, ref, cause="Отказ сервера БД", measures="Резервный кластер")
    assert resolved.cancelled == 10  # 3 rows cancelled, 7 never written
    asyncio.run(send_due(engine, cfg))
    assert Counter(kind for kind in _kinds(smtp_server)) == Counter({"apology": 10})


def _kinds(server: Any) -> list[str]:
    from notifier.sink import header_value

    return [(header_value(raw, "Feedback-ID") or "").split(":")[0] for _, _, raw in server.received]


def test_two_senders_writing_out_one_notice_send_each_row_once(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config(config, smtp_server, tmp_path, batch_size=7)
    members = [make_subscriber(region="66").email for _ in range(150)]
    _declare(engine, cfg, ["66"])
    start = threading.Barrier(2)
    reports: list[Any] = []

    def sender() -> None:
        start.wait()
        reports.append(asyncio.run(send_due(engine, cfg)))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(report.sent for report in reports) == 150
    assert recipients(smtp_server) == Counter({address: 1 for address in members})
    assert Counter(m.state for m in _status_rows(engine)) == Counter({"sent": 150})
