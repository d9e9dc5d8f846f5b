"""Composed messages parse back (with the modern email policy) to what was put in, stay
within the line limits, and cannot be made to carry extra headers; tokens verify."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone

import pytest

from notifier.composing import Composer, check_address, encode_header_text, message_id
from notifier.tokens import make_token, unsubscribe_url, verify_token

SECRET = b"test-secret-0123456789abcdef"
DATE = datetime(2026, 11, 23, 10, 5, 7, tzinfo=timezone(timedelta(hours=5)))
TEXT = "Уважаемый клиент!\nСервис сдачи отчётности был недоступен с 10:05 до 15:10.\n" * 12
HTML = (
    "<html><body>" + "<p>Приносим извинения за перебой — причина и меры ниже.</p>\n" * 40 + "</body></html>"
)


def compose(**overrides: object) -> bytes:
    composer = Composer("noreply@example.org", "Контур — служба поддержки")
    args: dict[str, object] = {
        "message_id": message_id(42, "example.org", "a1b2c3"),
        "to_name": "Иван Петрович Сидоров",
        "to_address": "ivan@example.org",
        "subject": "Сервис восстановлен: приносим извинения за перебой 23 ноября",
        "text": TEXT,
        "html": HTML,
        "date": DATE,
        "unsubscribe_url": unsubscribe_url("https://status.example.org/", make_token(SECRET, 7)),
    }
    args.update(overrides)
    return composer.compose(**args)  # type: ignore[arg-type]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_cyrillic_subject_and_names_round_trip() -> None:
    msg = parse(compose())
    assert msg["Subject"] == "Сервис восстановлен: приносим извинения за перебой 23 ноября"
    assert msg["To"].addresses[0].display_name == "Иван Петрович Сидоров"
    assert msg["To"].addresses[0].addr_spec == "ivan@example.org"
    # Python's parser keeps the folding space between two encoded words of a phrase (RFC 2047
    # readers drop it); names are split only at spaces, so at most a space is doubled.
    assert " ".join(msg["From"].addresses[0].display_name.split()) == "Контур — служба поддержки"
    assert msg["From"].addresses[0].addr_spec == "noreply@example.org"


def test_both_parts_carry_the_text() -> None:
    msg = parse(compose())
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == TEXT
    assert html.get_content() == HTML
    assert plain["Content-Type"].params["charset"] == "utf-8"
    assert not msg.defects and not plain.defects and not html.defects


def test_without_html_is_a_single_text_part() -> None:
    msg = parse(compose(html=None))
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == TEXT


def test_crlf_only_and_short_lines() -> None:
    raw = compose()
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe:"))
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))


def test_standard_headers_present() -> None:
    msg = parse(compose())
    assert msg["Date"].datetime == DATE
    assert msg["Message-ID"] == "<notifier.42.a1b2c3@example.org>"
    assert msg["MIME-Version"] == "1.0"
    token = make_token(SECRET, 7)
    assert msg["List-Unsubscribe"] == f"<https://status.example.org/unsubscribe/{token}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_unsubscribe_headers_without_url() -> None:
    msg = parse(compose(unsubscribe_url=None))
    assert "List-Unsubscribe" not in msg and "List-Unsubscribe-Post" not in msg


def test_plain_ascii_names_and_subjects_stay_readable() -> None:
    raw = compose(to_name="John Smith", subject="Service restored")
    assert b"\r\nTo: John Smith <ivan@example.org>\r\n" in raw
    assert b"\r\nSubject: Service restored\r\n" in raw
    msg = parse(compose(to_name='Smith, John "JS" Jr.'))
    assert msg["To"].addresses[0].display_name == 'Smith, John "JS" Jr.'
    assert len(msg["To"].addresses) == 1


def test_long_name_is_split_between_words() -> None:
    name = "Общество с ограниченной ответственностью «Рога и копыта» — бухгалтерия"
    raw = compose(to_name=name, unsubscribe_url=None)
    msg = parse(raw)
    assert " ".join(msg["To"].addresses[0].display_name.split()) == name
    assert all(len(line) <= 78 for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n"))


def test_long_subject_is_folded_and_round_trips() -> None:
    subject = "Плановые работы " * 20 + "end"
    msg = parse(compose(subject=subject))
    assert msg["Subject"] == subject.strip()
    line = encode_header_text("Subject", "x" * 200)
    assert all(len(part) <= 78 for part in line.split("\r\n"))


@pytest.mark.parametrize("field", ["to_name", "subject"], ids=["name", "subject"])
@pytest.mark.parametrize(
    "evil",
    [
        "Иван\r\nBcc: evil@x.org",
        "Ivan\r\nBcc: evil@x.org",
        "Ivan\nBcc: evil@x.org",
        "Ivan\rBcc: evil@x.org",
        "Ivan\x00\r\n\r\nBcc: evil@x.org",
        "Ivan\u2028Bcc: evil@x.org",
    ],
)
def test_header_injection_never_adds_a_header(field: str, evil: str) -> None:
    raw = compose(**{field: evil})
    msg = parse(raw)
    assert "Bcc" not in msg
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw
    assert msg.keys() == parse(compose()).keys()
    value = msg["To"].addresses[0].display_name if field == "to_name" else msg["Subject"]
    assert "Bcc: evil@x.org" in value and "\n" not in value and "\r" not in value


@pytest.mark.parametrize(
    "address",
    [
        "ivan@example.org\r\nBcc: evil@x.org",
        "a b@example.org",
        "noat.example.org",
        "a@b@example.org",
        "<ivan@example.org>",
        "ivan@example.org>, evil@x.org",
        "ivan@",
        "@example.org",
        "ivan@exa\x00mple.org",
    ],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        compose(to_address=address)
    with pytest.raises(ValueError):
        Composer(address)


def test_machine_headers_refuse_line_breaks() -> None:
    with pytest.raises(ValueError):
        compose(message_id="<a@b>\r\nBcc: evil@x.org")
    with pytest.raises(ValueError):
        compose(unsubscribe_url="https://x.org/u\r\nBcc: evil@x.org")
    with pytest.raises(ValueError):
        compose(extra_headers={"X-Kind": "status\r\nBcc: evil@x.org"})
    with pytest.raises(ValueError):
        compose(extra_headers={"X-Kind\r\nBcc": "status"})
    with pytest.raises(ValueError):
        compose(date=datetime(2026, 1, 1))


def test_extra_headers_are_added() -> None:
    msg = parse(compose(extra_headers={"X-Notifier-Kind": "apology"}))
    assert msg["X-Notifier-Kind"] == "apology"


def test_idn_domain_is_encoded() -> None:
    assert check_address("ivan@почта.рф") == "ivan@xn--80a1acny.xn--p1ai"


def test_message_id_is_stable_per_outbox_row_and_unique_per_database() -> None:
    same = message_id(42, "example.org", "9f3e")
    assert same == message_id(42, "example.org", "9f3e") == "<notifier.42.9f3e@example.org>"
    assert message_id(42, "example.org", "77aa") != same  # another database: another id
    assert Composer("a@mail.example.org").message_id(5, "9f3e") == "<notifier.5.9f3e@mail.example.org>"
    with pytest.raises(ValueError):
        message_id(1, "example.org>\r\nBcc: x")
    with pytest.raises(ValueError):
        message_id(1, "example.org", "x>\r\nBcc: y")


def test_composing_is_deterministic() -> None:
    assert compose() == compose()
    assert compose(date=DATE.astimezone(UTC)) != compose()


# Tokens ---------------------------------------------------------------------------------


def test_token_verifies_and_is_url_safe() -> None:
    token = make_token(SECRET, 12345)
    assert verify_token(SECRET, token) == 12345
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    assert len(token) < 40


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],
        lambda t: "12346" + t[5:],
        lambda t: "012345" + t[5:],
        lambda t: "+12345" + t[5:],
        lambda t: t.split(".")[0],
        lambda t: t + "=",
        lambda t: "",
        lambda t: "١٢٣٤٥" + t[5:],
        lambda t: t + "x" * 100,
    ],
)
def test_forged_or_mangled_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    assert verify_token(SECRET, mangle(make_token(SECRET, 12345))) is None


def test_token_from_another_secret_or_purpose_is_refused() -> None:
    assert verify_token(b"another-secret-0123456789", make_token(SECRET, 7)) is None
    assert verify_token(SECRET, make_token(SECRET, 7, purpose="console")) is None


def test_unsubscribe_url_shape() -> None:
    assert unsubscribe_url("https://s.example.org/", "7.abc") == "https://s.example.org/unsubscribe/7.abc"


def test_direction_and_invisible_characters_never_reach_a_name_or_subject() -> None:
    """Stored before the input rules existed, or straight from the database: a name or title
    with U+202E (right-to-left override) or U+200B cannot make a header read otherwise."""
    raw = compose(to_name="Иван\u202eтевирП\u200b", subject="Сбой\u202e гнитропер\u2066 \u200bисправлен")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for header in ("To", "Subject"):
        assert not any(ch in str(msg[header]) for ch in "\u202e\u2066\u200b"), msg[header]
    assert str(msg["Subject"]) == "Сбой гнитропер исправлен"
