"""What the phone line says and how it sounds: the hotline announcement made fit to be heard
(on both databases), the fixed phrases, and real espeak-ng + sox WAVs with their cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.config import load_config
from notifier.db import read_session
from notifier.errors import ConfigError
from notifier.models import utcnow
from notifier.rendering import Renderer
from notifier.voice import AudioCache, Listener, Speech, announcement, audio_key, reply, ssml
from notifier.voice.phrases import spoken_span
from notifier.voice.speech import said, sentences
from tests.conftest import write_config

needs_espeak = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox are needed (Debian packages; .ci/debian-packages installs them)",
)
STARTED = "2026-11-23T05:05:00Z"  # 10:05 in Yekaterinburg, 12:05 in Novosibirsk


@pytest.fixture
def outage(cli: Any) -> None:
    """The Kontur-like case: tax reporting down in 66 and 54, one update posted."""
    assert cli("incident", "declare", "--title", "Не отправляются отчёты в ФНС", "--region", "66", "--region", "54",
               "--service", "tax-reporting", "--started-at", STARTED, "--message", "Разбираемся").exit_code == 0  # fmt: skip
    assert cli("incident", "update", "INC-1", "--status", "identified",
               "--message", "Отказал сервер баз данных, переключаем на резервный").exit_code == 0  # fmt: skip


def speak(engine: Any, config: Any, listener: Listener, menu: tuple[str, ...] = ()) -> Speech:
    with read_session(engine) as session:
        return announcement(session, config, listener, utcnow(), renderer=Renderer(config), menu=menu)


def test_the_region_hears_the_hotline_announcement_in_its_local_time(engine, config, outage) -> None:
    speech = speak(engine, config, Listener(locale="ru", region="66"), menu=("callback",))
    assert speech.incidents == ("INC-1",)
    assert "Не отправляются отчёты в ФНС." in speech.text
    assert "Отказал сервер баз данных, переключаем на резервный." in speech.text  # the latest update
    assert "Разбираемся" not in speech.text
    assert "в 10:05 по времени Екатеринбурга" in speech.text
    assert speech.text.endswith("Чтобы мы вам перезвонили, нажмите 1.")
    assert not any(mark in speech.text for mark in '«»"')  # quotes are not heard
    novosibirsk = speak(engine, config, Listener(locale="en", region="54"))
    assert "12:05 Novosibirsk time" in novosibirsk.text and "Outage information" in novosibirsk.text


def test_a_region_with_nothing_wrong_hears_so_in_both_languages(engine, config, outage) -> None:
    moscow = speak(engine, config, Listener(locale="ru", region="77"))
    assert "В вашем регионе, Москва, сейчас сбоев нет." in moscow.text
    assert "Свердловская область, Новосибирская область" in moscow.text  # where the outage is
    assert moscow.incidents == ()
    assert (
        "There is no outage in your region, Moscow, right now."
        in speak(engine, config, Listener("en", "77")).text
    )


def test_with_no_open_incident_at_all_the_line_says_there_is_none(engine, config) -> None:
    assert "Сейчас сбоев нет." in speak(engine, config, Listener(locale="ru")).text
    assert "There is no outage right now." in speak(engine, config, Listener(locale="en")).text


def test_a_known_affected_caller_hears_first_that_it_hits_them_and_their_callback(
    engine, config, outage
) -> None:
    listener = Listener(locale="ru", region="66", known=True, affecting={"INC-1": ["Налоговая отчётность"]},
                        callback_in=90 * 60)  # fmt: skip
    text = speak(engine, config, listener).text
    hit = text.index("затрагивает и вас: сервис Налоговая отчётность")
    assert hit < text.index("Не отправляются отчёты в ФНС")
    assert "перезвоним в ближайшие 1 час 30 минут" in text
    late = speak(engine, config, Listener(locale="en", region="66", known=True, callback_in=-60)).text
    assert "we are late" in late and "does not affect the services you use" in late


def test_a_russian_title_on_the_english_line_is_pronounced_in_russian(engine, config, outage) -> None:
    speech = speak(engine, config, Listener(locale="en", region="66"))
    langs = {segment.text: segment.lang for segment in speech.segments}
    assert langs["Не отправляются отчёты в ФНС."] == "ru"
    assert {"en", "ru"} == set(langs.values())
    assert '<s xml:lang="ru">Не отправляются отчёты в ФНС.</s>' in ssml(speech)


def test_what_reads_badly_aloud_is_rewritten_or_dropped() -> None:
    text = ("Сбой продолжался 23 ноября 2026 г. с 10:05 до 15:12 (5 ч 7 мин)\n"
            "Подробности: https://status.example/INC-1 или support@example.org\n\n«Сфера»")  # fmt: skip
    heard = " ".join(s for _, s in sentences(text, "ru"))
    assert "2026 года" in heard and "5 часов 7 минут" in heard
    assert "http" not in heard and "@" not in heard and "«" not in heard
    assert heard.endswith("Сфера.")
    assert " ".join(s for _, s in sentences("It lasted 1 h 1 min", "en")) == "It lasted 1 hour 1 minute."


def test_markup_in_a_title_stays_text_in_the_ssml() -> None:
    speech = Speech(locale="ru", segments=said('Сбой </s><audio src="x"/> & всё', "ru"))
    document = ssml(speech)
    assert "<audio" not in document and "&lt;/s&gt;&lt;audio" in document


# Audio: real espeak-ng and sox ---------------------------------------------------------


@pytest.fixture
def plain_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A config with no database in use: audio needs none."""
    monkeypatch.delenv("NOTIFIER_DATABASE_URL", raising=False)
    return load_config(write_config(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))


def wav_facts(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


@needs_espeak
@pytest.mark.parametrize("rate", [8000, 16000])
def test_speech_becomes_16_bit_mono_pcm_at_the_telephony_rates(plain_config, rate) -> None:
    _, path = AudioCache(plain_config).ensure(reply("goodbye", "ru"), rate)
    framerate, channels, width, seconds = wav_facts(path)
    assert (framerate, channels, width) == (rate, 1, 2)
    assert 1.0 < seconds < 10.0
    assert path.read_bytes()[:4] == b"RIFF" and path.parent == plain_config.base_dir / "audio"


@needs_espeak
def test_longer_text_gives_longer_audio(plain_config) -> None:
    cache = AudioCache(plain_config)
    short = wav_facts(cache.ensure(reply("goodbye", "en"), 8000)[1])[3]
    long_text = Speech("en", said("Thank you for calling. " * 6, "en"))
    assert wav_facts(cache.ensure(long_text, 8000)[1])[3] > 3 * short


@needs_espeak
def test_the_audio_is_what_espeak_ng_itself_says(plain_config, tmp_path) -> None:
    speech = Speech("ru", said("Сейчас сбоев нет. Все сервисы работают.", "ru"))
    _, path = AudioCache(plain_config).ensure(speech, 16000)
    by_hand = tmp_path / "by-hand.wav"
    subprocess.run(["espeak-ng", "-m", "-b", "1", "-v", "ru", "-s", "150", "-w", str(tmp_path / "raw.wav"),
                    "--stdin"], input=ssml(speech).encode(), check=True)  # fmt: skip
    subprocess.run(["sox", "-V1", "-G", "-D", str(tmp_path / "raw.wav"), "-r", "16000", "-c", "1", "-b", "16",
                    "-e", "signed-integer", str(by_hand)], check=True)  # fmt: skip
    with wave.open(str(path)) as ours, wave.open(str(by_hand)) as theirs:
        assert ours.readframes(ours.getnframes()) == theirs.readframes(theirs.getnframes())


@needs_espeak
def test_the_cache_keeps_one_file_per_text_and_makes_a_new_one_for_new_text(plain_config) -> None:
    cache = AudioCache(plain_config)
    first_key, first = cache.ensure(reply("goodbye", "ru"), 8000)
    made = first.stat().st_ino  # a new synthesis would replace the file
    again_key, again = cache.ensure(reply("goodbye", "ru"), 8000)
    assert (again_key, again, again.stat().st_ino) == (first_key, first, made)  # not synthesised twice
    other_key, other = cache.ensure(reply("connecting", "ru"), 8000)
    assert other_key != first_key and other.exists() and first.exists()
    assert audio_key(plain_config, reply("goodbye", "ru"), 16000) != first_key  # the rate is in the key


@needs_espeak
def test_files_unused_for_audio_keep_are_removed(plain_config) -> None:
    cache = AudioCache(plain_config)
    key, path = cache.ensure(reply("goodbye", "en"), 8000)
    old = time.time() - timedelta(days=8).total_seconds()
    for stale in (path, path.with_suffix(".json")):
        os.utime(stale, (old, old))
    fresh_key, fresh = cache.ensure(reply("connecting", "en"), 8000)  # a synthesis prunes
    assert not path.exists() and fresh.exists() and key != fresh_key


def test_a_missing_synthesiser_is_one_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NOTIFIER_DATABASE_URL", raising=False)
    path = write_config(
        tmp_path, f"sqlite:///{tmp_path / 'unused.db'}", ivr={"espeak": "/nonexistent/espeak-ng"}
    )
    with pytest.raises(ConfigError, match=r"\[ivr\]\.espeak = '/nonexistent/espeak-ng' was not found"):
        AudioCache(load_config(path)).ensure(reply("goodbye", "ru"), 8000)


def test_a_bad_ivr_setting_names_its_key(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NOTIFIER_DATABASE_URL", raising=False)
    for key, value, message in [("lookup_rate", "fast", "lookup_rate"), ("operator_number", "call me", "operator_number"),
                                ("callback_in", "0s", "callback_in")]:  # fmt: skip
        (tmp_path / key).mkdir()
        with pytest.raises(ConfigError, match=rf"\[ivr\]\.{message}"):
            load_config(write_config(tmp_path / key, "sqlite:///x.db", ivr={key: value}))


def test_the_time_until_a_callback_is_said_in_words_rounded_up() -> None:
    assert spoken_span(2 * 3600, "ru") == "2 часа" and spoken_span(61, "en") == "2 minutes"
    assert spoken_span(86400 + 5 * 60, "ru") == "1 день 5 минут" and spoken_span(1, "ru") == "1 минуту"
