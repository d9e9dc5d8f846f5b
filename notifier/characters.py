"""Which characters a name, title or text may hold, and how untrusted text is shown to staff.

Owns three rules that every input path (CSV import, ``subscribers add``, incident titles and
texts, console user names) and every output path (the terminal, the console) applies:

* **refused**: control characters (C0 but the line breaks a multi-line text may hold, DEL,
  the C1 range with NEL and CSI, U+2028/U+2029) and the invisible characters that change
  the direction of the text around them (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
  U+061C): a reader cannot see them, and they can make "moc.elppa" read as "apple.com";
* **stripped**: other invisible format characters (zero-width space and joiners, word
  joiner, soft hyphen, BOM, Hangul fillers): copy-paste leftovers that only make two
  equal names look different to a computer;
* **escaped on output**: ``for_terminal`` shows any of them still in the database as
  ``<U+202E>`` instead of letting a terminal obey them (``defused``: as U+FFFD, for HTML).

It also decides when an e-mail domain is shown in its ASCII (``xn--``) form: when its
letters are not all of one script, a look-alike (``аррӏе.com``, Cyrillic) could pass for
another (``apple.com``). It reads and stores nothing.
"""

from __future__ import annotations

import re
import unicodedata

import idna

_C0 = "\x00-\x1f"
_C0_BUT_BREAKS = "\x00-\x08\x0b\x0c\x0e-\x1f"  # a multi-line text keeps tab, LF and CR
_OTHER_CONTROL = "\x7f-\x9f\u2028\u2029"  # DEL, C1 (NEL, CSI …), line and paragraph separators
_LINE_BREAKS = "\t\n\r"
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Unicode's format characters (Cf) besides the direction ones, and the blank-looking fillers.
_INVISIBLE = (
    "\u00ad\u034f\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200d\u2060-\u2064\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_CONTROL_RE = re.compile(f"[{_C0}{_OTHER_CONTROL}]")
_CONTROL_MULTILINE_RE = re.compile(f"[{_C0_BUT_BREAKS}{_OTHER_CONTROL}]")
_BIDI_RE = re.compile(f"[{_BIDI}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_UNSHOWABLE_RE = re.compile(f"[{_C0}{_OTHER_CONTROL}{_BIDI}{_INVISIBLE}]")
_UNSHOWABLE_MULTILINE_RE = re.compile(f"[{_C0_BUT_BREAKS}{_OTHER_CONTROL}{_BIDI}{_INVISIBLE}]")


_LINE_CONTROLS_RE = re.compile(f"[{_C0}{_OTHER_CONTROL}]+")
_HIDDEN_RE = re.compile(f"[{_BIDI}{_INVISIBLE}]+")


def one_line(value: str) -> str:
    """Text for one displayed line (a header's display name or subject): every run of control
    characters becomes a space, direction and invisible characters are dropped."""
    return _LINE_CONTROLS_RE.sub(" ", _HIDDEN_RE.sub("", value)).strip()


def code_point(char: str) -> str:
    """``'\\u202e'`` -> ``'U+202E'``: how a character nobody can see is named in a message."""
    return f"U+{ord(char):04X}"


def problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored as a name or text, as the end of a sentence; None if it may.

    A multi-line text (an update, a cause) may hold tabs and line breaks (LF, CR); a name
    or a title may not.
    """
    control = (_CONTROL_MULTILINE_RE if multiline else _CONTROL_RE).search(value)
    if control:
        what = (
            "a line break, tab or similar" if control.group() in _LINE_BREAKS else code_point(control.group())
        )
        return f"contains a control character ({what})"
    bidi = _BIDI_RE.search(value)
    if bidi:
        return (
            f"contains an invisible character that reverses or reorders the text ({code_point(bidi.group())})"
        )
    return None


def suspicious(value: str) -> bool:
    """Whether ``value`` holds any character ``problem`` refuses or ``strip_invisible`` removes
    (one regex search: the fast path for the rows that hold none)."""
    return not (value.isascii() and value.isprintable()) and _UNSHOWABLE_RE.search(value) is not None


# The printable characters (str.isprintable) that the rules above refuse or strip are all at or
# above U+115F but U+034F (the combining grapheme joiner); tests/test_subscribers.py checks it
# against the whole Unicode range of this Python.
_FIRST_PRINTABLE_HIDDEN_ABOVE_034F = "\u115f"
_MAYBE_PRINTABLE_HIDDEN_RE = re.compile(f"[\u034f{_FIRST_PRINTABLE_HIDDEN_ABOVE_034F}-\U0010ffff]")


def plain(value: str) -> bool:
    """True when ``value`` is printable (``str.isprintable``: no control, format, separator,
    surrogate or unassigned character) and holds nothing ``suspicious`` would flag: then no rule
    here has anything to say about it. C-speed checks for the usual row (letters, digits and
    punctuation of any script below U+115F); the whole rule only for the rest."""
    if not value.isprintable():
        return False
    if value.isascii() or _MAYBE_PRINTABLE_HIDDEN_RE.search(value) is None:
        return True
    return _UNSHOWABLE_RE.search(value) is None


def strip_invisible(value: str) -> str:
    """``value`` without zero-width and other invisible format characters (direction ones stay:
    ``problem`` refuses those)."""
    return _INVISIBLE_RE.sub("", value) if not value.isascii() else value


def for_terminal(value: str, *, keep_line_breaks: bool = True) -> str:
    """``value`` with every control, direction or invisible character shown as ``<U+XXXX>``.

    Line breaks and tabs stay (unless ``keep_line_breaks`` is false): this is for printing,
    so a title stored before these rules, or a reason quoting a bad row, cannot move the
    cursor, recolour the screen or reverse a line.
    """
    if value.isascii() and value.isprintable():
        return value
    pattern = _UNSHOWABLE_MULTILINE_RE if keep_line_breaks else _UNSHOWABLE_RE
    return pattern.sub(lambda match: f"<{code_point(match.group())}>", value)


def defused(value: str, replacement: str = "\ufffd") -> str:
    """``value`` with every control, direction or invisible character (but tab and line breaks)
    replaced by ``replacement``: for HTML, where ``<U+202E>`` would look like a tag."""
    if value.isascii() and value.isprintable():
        return value
    return _UNSHOWABLE_MULTILINE_RE.sub(replacement, value)


def _script(char: str) -> str:
    """A letter's script, as the first word of its Unicode name (LATIN, CYRILLIC, GREEK, CJK …)."""
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def _accented_ascii(char: str) -> bool:
    """ü, é, ñ: an ASCII letter with marks on it (a reader sees the marks), unlike ɑ or ı."""
    base = unicodedata.normalize("NFKD", char)[0]
    return base.isascii() and base.isalpha()


def display_domain(domain: str) -> str:
    """The domain as staff should see it: as written when that cannot deceive, else ``xn--…``.

    Shown as written: ASCII, Latin letters with accents (``bücher.de``), or letters all of one
    other script including the top-level domain (``почта.рф``). Anything else — Cyrillic
    under ``.com``, scripts mixed in one name — is shown in its ASCII (punycode) form.
    """
    if domain.isascii():
        return domain
    letters = [char for char in domain if char.isalpha()]
    if all(_accented_ascii(char) for char in letters):
        return domain
    if len({_script(char) for char in letters}) == 1 and not any(char.isascii() for char in letters):
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:  # not valid IDNA 2008: show each label's raw punycode all the same
        return ".".join(
            label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
            for label in domain.split(".")
        )


def display_email(email: str | None) -> str:
    """An e-mail address with its domain as ``display_domain`` shows it ('' for None)."""
    if not email:
        return ""
    local, at, domain = email.rpartition("@")
    return f"{local}{at}{display_domain(domain)}" if at else email
