"""Fault injection: senders killed, SMTP and database outages, scripted refusals, slow replies,
racing resolves and a full disk, each ending with the one invariant of ``tests.faults``
(:func:`~tests.faults.check_invariant`): every apology in exactly one final state, the server
got a subset of the audience and nothing suppressed, duplicates only what was in flight and
then the same Message-ID. Everything is seeded and bounded in time; SQLite and PostgreSQL
through the ``backend`` fixture unless a scenario is specific to one of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.db import make_engine, read_session, write_session
from notifier.delivery.sender import send_due
from notifier.models import Message, Subscriber, utcnow
from tests.conftest import PG_BIN, free_port
from tests.faults import (
    Mailing,
    OwnCluster,
    check_invariant,
    in_flight_bound,
    mailing_config,
    one_line_error,
    prepare_mailing,
    run_send,
    start_send,
    wait_until,
)
from tests.processes import notifier_command
from tests.smtp_server import ScriptedSmtpServer

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).resolve().parent / "fault_hooks"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _finish(mailing: Mailing) -> None:
    """After the last kill: one clean sender (in this process, to save a start-up) drains what
    is left; the killed senders' messages are taken back at once (their processes are gone)."""
    report = asyncio.run(asyncio.wait_for(send_due(mailing.engine, mailing.config), 60))
    assert report.failed == report.bounced == 0


# -- SIGKILL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_points_loses_nothing(backend, engine, config, smtp_server, tmp_path, seed) -> None:
    """A sender killed twice at seeded random points, restarted at once."""
    rnd = random.Random(seed * 1000 + (backend == "postgres"))
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port)
    mailing = prepare_mailing(engine, cfg, 120)
    smtp_server.on("DATA", "*", delay=0.01)
    kills = 0
    for _ in range(2):
        proc = start_send(mailing, tmp_path / "send.log")
        target = len(smtp_server.received) + rnd.randint(3, 40)
        wait_until(lambda t=target, p=proc: len(smtp_server.received) >= t or p.poll() is not None, 30)
        time.sleep(rnd.uniform(0, 0.05))  # anywhere: mid-send, mid-claim, mid-record
        if proc.poll() is None:
            kills += 1
        _kill(proc)
    _finish(mailing)

    outcome = check_invariant(
        mailing, smtp_server.received, max_duplicates=kills * in_flight_bound(cfg, 0.01), max_copies=kills + 1
    )
    assert outcome.states == {"sent": 120, "cancelled": 1}
    assert kills >= 1, "the sender finished before it could be killed: make it slower"


def test_two_senders_killed_and_restarted_in_turn(backend, engine, config, smtp_server, tmp_path) -> None:
    rnd = random.Random(7 + (backend == "postgres"))
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port)
    mailing = prepare_mailing(engine, cfg, 200)
    smtp_server.on("DATA", "*", delay=0.01)
    log = tmp_path / "send.log"
    senders = [start_send(mailing, log), start_send(mailing, log)]
    kills = 0
    for turn in range(3):  # kill A, restart it; kill B, restart it; kill A again
        victim = turn % 2
        target = len(smtp_server.received) + rnd.randint(10, 30)
        proc = senders[victim]
        wait_until(lambda t=target, p=proc: len(smtp_server.received) >= t or p.poll() is not None, 30)
        if senders[victim].poll() is None:
            kills += 1
        _kill(senders[victim])
        senders[victim] = start_send(mailing, log)
    for proc in senders:
        proc.wait(timeout=60)
        assert proc.returncode == 0, log.read_text(errors="replace")
    _finish(mailing)

    outcome = check_invariant(
        mailing, smtp_server.received, max_duplicates=kills * in_flight_bound(cfg, 0.01), max_copies=kills + 1
    )
    assert outcome.states == {"sent": 200, "cancelled": 1}
    assert kills >= 2
    assert "Traceback" not in log.read_text(errors="replace")


def test_senders_killed_while_writing_out_status_notices_lose_none_and_send_none_twice(
    backend, engine, config, smtp_server, tmp_path
) -> None:
    """The first status notice is owed at declare; the senders write its rows as they claim, in
    the claim's transaction. Two senders die (SIGKILL) inside a write-out, rows inserted and not
    committed: the rows come back with the next claim, each member gets the notice once."""
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port,
                         mailing={"send_status_notices": True})  # fmt: skip
    mailing = prepare_mailing(engine, cfg, 150, declare_only=True)
    mailing.kind = "status"
    assert mailing.states() == {}, "the notice should be owed, not written at declare"
    smtp_server.on("DATA", "*", delay=0.01)
    log = tmp_path / "send.log"
    hooks = os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")])
    written = []
    for kill_at in (2, 1):
        proc = start_send(mailing, log, env={**mailing.env, "PYTHONPATH": hooks,
                                             "NOTIFIER_TEST_KILL_IN_WRITE_OUT": str(kill_at)})  # fmt: skip
        assert proc.wait(timeout=60) == -signal.SIGKILL, log.read_text(errors="replace")
        written.append(sum(mailing.states().values()))
    assert written[0] < 150 and written[0] <= written[1] < 150, f"rows after each kill: {written}"
    _finish(mailing)

    outcome = check_invariant(mailing, smtp_server.received, max_duplicates=2 * in_flight_bound(cfg, 0.01))
    assert outcome.states == {"sent": 150}
    assert len(smtp_server.received) >= 150


# -- SMTP faults -------------------------------------------------------------------------------


def test_smtp_server_down_then_back(engine, config, tmp_path) -> None:
    """Connection refused: every message to retry with back-off, none failed; then delivered once."""
    port = free_port()
    cfg = mailing_config(
        tmp_path / "cfg", config.notifier.database, port,
        mailing={"retry_backoff": "8s", "retry_backoff_max": "8s"},  # longer than a send's start-up
    )  # fmt: skip
    mailing = prepare_mailing(engine, cfg, 30)

    down = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 30))
    assert (down.sent, down.failed, down.bounced) == (0, 0, 0) and down.retried == 30
    assert mailing.states() == {"retry": 30, "cancelled": 1}
    assert {m.attempts for m in mailing.messages().values() if m.state == "retry"} == {1}
    again = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 30))  # not due yet: backs off
    assert again.sent == again.retried == 0

    server = ScriptedSmtpServer().start(port=port)
    try:
        retry_at = max(m.not_before for m in mailing.messages().values() if m.state == "retry")
        time.sleep(max(0.0, (retry_at - utcnow()).total_seconds()) + 0.2)  # the back-off
        up = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 30))
        assert up.sent == 30 and up.failed == 0
        outcome = check_invariant(mailing, server.received)
    finally:
        server.stop()
    assert outcome.states == {"sent": 30, "cancelled": 1}
    assert set(outcome.copies.values()) == {1}


def test_reply_after_the_final_dot_lost_is_ambiguous_and_resent_once(
    engine, config, smtp_server, tmp_path, caplog
) -> None:
    """One reply delayed past the client's timeout, one connection dropped after the final dot:
    both counted as ambiguous, retried, at most one duplicate each, the same Message-ID."""
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port, smtp={"timeout": "1s"})
    mailing = prepare_mailing(engine, cfg, 10)
    slow, dropped = "m3@example.org", "m7@example.org"
    smtp_server.on("DATA", slow, delay=2.0, times=1)
    smtp_server.on("DATA", dropped, drop=True, times=1)

    with caplog.at_level(logging.WARNING, logger="notifier.sender"):
        report = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 30))
    time.sleep(1.2)  # let the slow handler finish: if the server keeps that copy, it is counted

    assert report.sent == 10 and report.failed == 0 and report.retried == 2
    outcome = check_invariant(mailing, smtp_server.received, max_duplicates=2)
    assert outcome.copies[dropped] == 2  # the server had it; the client could not know
    assert set(outcome.duplicates) <= {slow, dropped}
    messages = mailing.messages()
    assert (messages[slow].attempts, messages[dropped].attempts) == (2, 2)
    ambiguous = [r.getMessage() for r in caplog.records if "may have been delivered" in r.getMessage()]
    assert len(ambiguous) == 2 and any(slow in line for line in ambiguous)


@pytest.mark.parametrize("seed", [11, 12])
def test_random_4xx_retried_550_bounced(backend, engine, config, smtp_server, tmp_path, seed) -> None:
    """451/452 at seeded random places: retried, delivered exactly once; 421 (the relay closing,
    or throttling us): waited out and retried uncharged. 550 on RCPT: failed, bounced,
    attempted once, never retried."""
    rnd = random.Random(seed)
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port)
    mailing = prepare_mailing(engine, cfg, 40)
    addresses = sorted(mailing.audience - mailing.suppressed)
    refused = set(rnd.sample(addresses, 3))
    for address in sorted(refused):
        smtp_server.on("RCPT", address, "550 5.1.1 No such user")
    transient = [
        ("RCPT", "451 4.3.0 Try again later"), ("RCPT", "452 4.5.3 Too many recipients"),
        ("DATA", "451 4.3.0 Try again later"), ("DATA", "421 4.3.2 Shutting down"),
        ("RCPT", "421 4.7.0 Too busy"),
    ]  # fmt: skip
    unlucky = rnd.sample(sorted(set(addresses) - refused), 15)
    charged: dict[str, int] = {}
    for address in unlucky:
        command, reply = rnd.choice(transient)
        times = rnd.randint(1, 3)
        smtp_server.on(command, address, reply, times=times)
        charged[address] = 0 if reply.startswith("421") else times
    smtp_server.on("MAIL", "*", "421 4.7.0 Too busy", times=rnd.randint(1, 4))

    # A guard against a hang, not a speed check: the 421s double a shared back-off (1, 2, 4, … s,
    # reset by a success), so how long this takes depends on how the connections interleave;
    # a loaded machine has seen it pass 60 s.
    report = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 240))

    left = [(r.command, r.match, r.times) for r in smtp_server.rules if r.times]
    assert not left, (left, report)  # every fault fired
    assert report.sent == 37 and report.bounced == 3 and report.failed == 0
    assert report.retried == sum(charged.values())
    outcome = check_invariant(mailing, smtp_server.received)
    assert set(outcome.copies) == set(addresses) - refused and set(outcome.copies.values()) == {1}
    messages = mailing.messages()
    assert {a: messages[a].attempts for a in unlucky} == {a: 1 + n for a, n in charged.items()}
    with read_session(engine) as session:
        for address in refused:
            assert (messages[address].state, messages[address].attempts) == ("failed", 1)
            assert "550" in messages[address].last_error
            subscriber = session.get(Subscriber, messages[address].subscriber_id)
            assert subscriber.status == "bounced"
    assert asyncio.run(send_due(engine, cfg)).sent == 0  # nothing left, nothing retried


# -- database faults ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[OwnCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    cluster = OwnCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.postgres
def test_postgres_down_for_a_moment(own_cluster, smtp_server, tmp_path, monkeypatch) -> None:
    """`pg_ctl stop -m fast` for ~2 s mid-mailing: the sender waits, goes on, fails nothing."""
    monkeypatch.setenv("NOTIFIER_SECRET", "test-secret-0123456789abcdef")
    cfg = mailing_config(tmp_path / "cfg", own_cluster.new_database(), smtp_server.port)
    engine = make_engine(cfg.database_url)
    try:
        mailing = prepare_mailing(engine, cfg, 200)
        engine.dispose()
        smtp_server.on("DATA", "*", delay=0.01)
        log = tmp_path / "send.log"
        proc = start_send(mailing, log)
        try:
            assert wait_until(lambda: len(smtp_server.received) >= 30 or proc.poll() is not None, 30)
            assert proc.poll() is None, log.read_text(errors="replace")
            own_cluster.stop("fast")
            time.sleep(2)
            own_cluster.start()
            out, _ = proc.communicate(timeout=90)
        finally:
            _kill(proc)
        stderr = log.read_text(errors="replace")
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert json.loads(out)["failed"] == 0
        outcome = check_invariant(mailing, smtp_server.received, max_duplicates=in_flight_bound(cfg, 0.01))
        assert outcome.states == {"sent": 200, "cancelled": 1}
    finally:
        engine.dispose()


def test_two_resolves_at_the_same_moment_queue_one_mailing(
    backend, engine, config, smtp_server, tmp_path
) -> None:
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port)
    mailing = prepare_mailing(engine, cfg, 30, declare_only=True)
    command = notifier_command(
        "incident", "resolve", f"INC-{mailing.incident_id}", "--cause", "Отказ диска", "--measures", "Замена"
    )
    procs = [
        subprocess.Popen(command, env=mailing.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(proc.wait(timeout=60), *proc.communicate()) for proc in procs]

    assert sorted(code for code, _, _ in results) == [0, 1], results
    _, _, loser = next(result for result in results if result[0] != 0)
    one_line_error(loser)
    assert "already resolved" in loser
    assert mailing.states() == {"queued": 30}

    assert asyncio.run(asyncio.wait_for(send_due(engine, cfg), 30)).sent == 30
    outcome = check_invariant(mailing, smtp_server.received)
    assert outcome.states == {"sent": 30} and set(outcome.copies.values()) == {1}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_disk_full_is_a_clear_error_and_nothing_false_is_recorded(
    backend, engine, config, smtp_server, tmp_path
) -> None:
    """The database file cannot grow (SQLITE_FULL, through tests/fault_hooks): `notifier send`
    stops with one line and a non-zero exit; nothing is marked sent that the server did not
    get. With room again, the next run delivers the rest; duplicates only what was in flight."""
    cfg = mailing_config(
        tmp_path / "cfg", config.notifier.database, smtp_server.port, mailing={"batch_size": 50}
    )
    mailing = prepare_mailing(engine, cfg, 300)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    env = {**mailing.env, "PYTHONPATH": os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")]),
           "NOTIFIER_TEST_SQLITE_EXTRA_PAGES": "1"}  # fmt: skip

    full = run_send(mailing, timeout=90, env=env)

    assert full.returncode != 0, (full.stdout, full.stderr)
    one_line_error(full.stderr)
    assert "full" in full.stderr.lower(), full.stderr
    first = len(smtp_server.received)
    assert first < 300, "the disk never filled up: lower NOTIFIER_TEST_SQLITE_EXTRA_PAGES"
    check_invariant(mailing, smtp_server.received, drained=False)  # sent ⊆ received already

    again = run_send(mailing, timeout=60)
    assert again.returncode == 0, again.stderr
    outcome = check_invariant(mailing, smtp_server.received, max_duplicates=in_flight_bound(cfg, None))
    assert outcome.states == {"sent": 300, "cancelled": 1}


def test_invariant_catches_what_it_should(engine, config, smtp_server, tmp_path) -> None:
    """The invariant itself: a suppressed address, a stranger, another Message-ID, a lie in the
    outbox and an unexpected duplicate are each caught."""
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port)
    mailing = prepare_mailing(engine, cfg, 3)
    asyncio.run(send_due(engine, cfg))
    good: list[Any] = list(smtp_server.received)
    check_invariant(mailing, good)
    mail_from, (rcpt,), raw = good[0]
    for bad in (
        [*good, good[0]],  # a duplicate nobody allowed
        [*good, (mail_from, ["m-unsub1@example.org"], raw)],  # suppressed
        [*good, (mail_from, ["stranger@example.org"], raw)],  # not in the audience
        [(mail_from, [rcpt], raw.replace(b"<notifier.", b"<notifier.9")), *good[1:]],  # another letter
        good[1:],  # marked sent, never received
    ):
        with pytest.raises(AssertionError):
            check_invariant(mailing, bad)
    with write_session(engine) as session:
        message = session.get(Message, mailing.messages()[rcpt].id)
        message.state = "retry"
    with pytest.raises(AssertionError):
        check_invariant(mailing, good)  # left in retry, and received but not recorded as sent


# -- a sender on another machine ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_killed_sender_on_another_machine_is_taken_over_within_the_heartbeat_timeout(
    backend, engine, config, smtp_server, tmp_path
) -> None:
    """Two machines on one PostgreSQL (the first plays another machine): killed mid-mailing, its
    messages wait for its heartbeat timeout, not a lease of minutes, and then the second sender
    delivers them; it says what it waits for."""
    cfg = mailing_config(tmp_path / "cfg", config.notifier.database, smtp_server.port,
                         mailing={"heartbeat": "1s", "heartbeat_timeout": "8s"})  # fmt: skip
    mailing = prepare_mailing(engine, cfg, 150)
    smtp_server.on("DATA", "*", delay=0.01)
    elsewhere = {**mailing.env, "NOTIFIER_MACHINE_ID": "machine-b"}
    proc = start_send(mailing, tmp_path / "b.log", env=elsewhere)
    assert wait_until(lambda: len(smtp_server.received) >= 30 or proc.poll() is not None, 30)
    _kill(proc)
    killed_at = time.monotonic()
    assert mailing.states()["sending"] > 0  # it died holding messages

    second = run_send(mailing, timeout=60)
    took = time.monotonic() - killed_at

    assert second.returncode == 0, second.stderr
    assert "waiting: " in second.stderr and "held by sender" in second.stderr
    assert "taken back" in second.stderr
    assert 8 <= took < 8 + 15  # the heartbeat timeout (not a lease of minutes), start-up, the rest
    outcome = check_invariant(mailing, smtp_server.received, max_duplicates=in_flight_bound(cfg, 0.01))
    assert outcome.states == {"sent": 150, "cancelled": 1}
