"""Spoken audio: speech synthesised with espeak-ng, resampled with sox, cached on disk.

Owns the SSML handed to espeak-ng (each segment in its own language, built with
``xml.etree``, so no text can add markup), running the two programs (argument lists, no
shell, text on standard input, a time limit), and the cache: one WAV per hash of (text,
voice, speed, rate) in ``[ivr].audio_dir``, written atomically, so a new update yields a new
file while the stable URL of a region simply points at the newest. Every file is 16-bit
mono PCM at 8 kHz (telephony) or 16 kHz. Files unused for ``[ivr].audio_keep`` are removed.
It does not decide what is said (``voice.speech``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from notifier.config import Config
from notifier.errors import ConfigError, NotFoundError
from notifier.voice.speech import Segment, Speech

RATES = (8000, 16000)
SSML_NS = "http://www.w3.org/2001/10/synthesis"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_KEY = re.compile(r"[0-9a-f]{32}")
_TIMEOUT = 60  # seconds; a paragraph takes well under one


class AudioNotFound(NotFoundError):
    def __init__(self, key: str) -> None:
        super().__init__(f"No audio by the key {key!r} (it expired, or was never made here).")


def ssml(speech: Speech) -> str:
    """The SSML document espeak-ng reads: one ``<s>`` per segment, in the segment's language."""
    ET.register_namespace("", SSML_NS)
    root = ET.Element(f"{{{SSML_NS}}}speak", {"version": "1.0", _XML_LANG: speech.locale})
    for segment in speech.spoken:
        sentence = ET.SubElement(root, f"{{{SSML_NS}}}s", {_XML_LANG: segment.lang})
        sentence.text = segment.text
    return ET.tostring(root, encoding="unicode")


def check_rate(rate: int) -> int:
    if rate not in RATES:
        raise ValueError(f"rate must be one of {', '.join(map(str, RATES))}, not {rate}")
    return rate


def audio_key(config: Config, speech: Speech, rate: int) -> str:
    """The cache key: a hash of everything that changes the sound."""
    ivr = config.ivr
    material = {
        "segments": [[s.lang, s.text] for s in speech.spoken], "locale": speech.locale,
        "voice": ivr.voices.get(speech.locale), "speed": ivr.speed, "rate": check_rate(rate),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()[:32]


def _program(name: str, option: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"[ivr].{option} = {name!r} was not found: install the Debian package "
            f"{'espeak-ng' if option == 'espeak' else 'sox'}, or give its path"
        )
    return found


def _run(args: list[str], stdin: bytes | None, what: str) -> None:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what} did not finish within {_TIMEOUT} s") from None
    except OSError as exc:
        raise ConfigError(f"{what} could not be started: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(
            f"{what} failed (exit {done.returncode}): {message[-1] if message else 'no message'}"
        )


def synthesise(config: Config, speech: Speech, rate: int, target: Path) -> None:
    """Write ``speech`` to ``target``: espeak-ng (its own 22.05 kHz), then sox to ``rate``,
    mono, 16-bit signed PCM."""
    ivr = config.ivr
    espeak, sox = _program(ivr.espeak, "espeak"), _program(ivr.sox, "sox")
    check_rate(rate)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".synth-") as work:
        raw = Path(work) / "espeak.wav"
        voice = ivr.voices.get(speech.locale)
        _run([espeak, "-m", "-b", "1", "-v", voice, "-s", str(ivr.speed), "-w", str(raw), "--stdin"],
             ssml(speech).encode("utf-8"), "espeak-ng")  # fmt: skip
        resampled = Path(work) / "out.wav"
        _run([sox, "-V1", "-G", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer",
              str(resampled)], None, "sox")  # fmt: skip
        os.replace(resampled, target)


class AudioCache:
    """WAVs of speech by key in ``[ivr].audio_dir`` (relative to the config file), each with a
    small ``.json`` of what it says, so a URL handed out before the file was made still works."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.directory = (config.base_dir / config.ivr.audio_dir).resolve()

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not _KEY.fullmatch(key):
            raise AudioNotFound(key)
        return self.directory / f"{key}.wav", self.directory / f"{key}.json"

    def register(self, speech: Speech, rate: int) -> str:
        """Remember ``speech`` at ``rate`` under its key (synthesis waits for the first fetch)."""
        key = audio_key(self.config, speech, rate)
        _, note = self._paths(key)
        if note.exists():
            _touch(note)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            record = {
                "rate": rate,
                "locale": speech.locale,
                "segments": [[s.lang, s.text] for s in speech.spoken],
            }
            _write_atomically(note, json.dumps(record, ensure_ascii=False).encode("utf-8"))
        return key

    def wav(self, key: str) -> Path:
        """The WAV for ``key``, synthesised now if it is not there yet; AudioNotFound if unknown."""
        wav, note = self._paths(key)
        if wav.exists():
            _touch(wav, note)
            return wav
        try:
            record = json.loads(note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise AudioNotFound(key) from None
        speech = Speech(
            locale=record["locale"], segments=tuple(Segment(*pair) for pair in record["segments"])
        )
        synthesise(self.config, speech, int(record["rate"]), wav)
        _touch(note)
        self.prune()
        return wav

    def ensure(self, speech: Speech, rate: int) -> tuple[str, Path]:
        """Key and WAV of ``speech`` at ``rate``, synthesised if need be."""
        key = self.register(speech, rate)
        return key, self.wav(key)

    def prune(self) -> int:
        """Remove files unused for ``[ivr].audio_keep``; returns how many went."""
        cutoff = time.time() - self.config.ivr.audio_keep.total_seconds()
        removed = 0
        for path in self.directory.glob("*"):
            if path.suffix in (".wav", ".json") and _KEY.fullmatch(path.stem):
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue  # another request pruned it first
        return removed


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def _touch(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
