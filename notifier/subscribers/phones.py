"""Phone numbers in any common format -> E.164, as ``phonenumbers`` reads them, but cheaper.

Owns ``normalise_phone``. ``phonenumbers.parse`` is general (vanity letters, extensions,
``tel:`` URIs, wide digits, any punctuation) and costs most of an import's validation. Most
numbers people type are ASCII digits with spaces, brackets, dashes or dots and perhaps one
leading ``+``: for those, everything ``parse`` does after extracting the number depends only
on the digits and on that ``+``, and ``_digits_only`` below takes the same steps on the
digits directly, with ``phonenumbers``' own helpers and metadata. Validity is decided by
``phonenumbers.is_valid_number`` itself, on the number those steps give. Whatever the fast
path cannot settle (an international dialling prefix such as ``810``, a number that would be
refused, anything unusual) goes to ``parse``, so a rejection reads the same as before.
``tests/test_subscribers.py`` checks, on generated numbers in the formats people type, that the
fast path never accepts what ``parse`` refuses and never normalises a number differently.

It knows nothing of CSV rows (``validation``).
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    SUPPORTED_REGIONS,
    ValidationResult,
    _extract_country_code,
    _maybe_strip_national_prefix_carrier_code,
    _test_number_length,
    region_code_for_country_code,
)

from notifier.subscribers import phone_patterns

phonenumbers.enable_pattern_cache()  # metadata patterns stay compiled (a bounded set)

_LONGEST = 40  # characters of a number the fast path reads
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
          "voicemail", "fixed_line")  # fmt: skip
_NOT_CHOSEN = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' bounds on a national significant number


class PhoneError(ValueError):
    """``phonenumbers`` cannot read the text as a number (``not_a_number``) or the number is not valid."""

    def __init__(self, not_a_number: bool) -> None:
        super().__init__("not a phone number" if not_a_number else "not a valid number")
        self.not_a_number = not_a_number


def normalise_phone(raw: str, country: str) -> str:
    """``raw`` in E.164 (``+79123456789``), read as a number of ``country`` unless it says otherwise;
    PhoneError when ``phonenumbers`` refuses it."""
    fast = fast_e164(raw, country)
    return fast if fast is not None else slow_e164(raw, country)


def slow_e164(raw: str, country: str) -> str:
    """The reference: ``phonenumbers.parse``, ``is_valid_number``, ``format_number(E164)``."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise PhoneError(not_a_number=True) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(not_a_number=False)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def fast_e164(raw: str, country: str) -> str | None:
    """What ``slow_e164`` returns, for a valid number typed in a common format; None when this
    path cannot say (the caller then asks ``slow_e164``, which also explains a refusal)."""
    plus = raw.startswith("+")
    digits = raw[plus:].replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace(".", "")
    if not (digits.isdigit() and digits.isascii() and len(raw) <= _LONGEST):
        return None  # not only ASCII digits and the usual punctuation (and one leading +)
    known = _ANSWERS.get(country, plus, digits)
    if known is _NOT_KNOWN:
        return _answer(country, plus, digits)
    return None if known is None else f"+{known[0]}{digits[known[1] :]}"


def _answer(country: str, plus: bool, digits: str) -> str | None:
    """The fast path's answer worked out, and remembered for every number it holds for."""
    metadata = _metadata(country)
    if metadata is None or len(digits) < 3:  # fewer digits: parse's viability rules, not ours
        return None
    reads = _Reads()
    found = _digits_only(digits, plus, metadata, reads)
    if found is not None and not _valid(found[0], found[1], reads, len(digits) - len(found[1])):
        found = None
    if found is None:
        _ANSWERS.put(country, plus, digits, reads, None)
        return None
    code, national = found
    if reads.exact and digits.endswith(national):
        _ANSWERS.put(country, plus, digits, reads, (code, len(digits) - len(national)))
    return f"+{code}{national}"


_NOT_KNOWN = object()


class _Answers:
    """Answers remembered by (country, +, number of digits, leading digits), as many leading
    digits as decided them (``_Reads``); at most ``LIMIT`` of them, so memory stays bounded."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self._known: dict[tuple[str, bool, int, str], tuple[int, int] | None] = {}
        self._depths: dict[tuple[str, bool, int], list[int]] = {}

    def get(self, country: str, plus: bool, digits: str) -> Any:
        length = len(digits)
        for depth in self._depths.get((country, plus, length), ()):
            found = self._known.get((country, plus, length, digits[:depth]), _NOT_KNOWN)
            if found is not _NOT_KNOWN:
                return found
        return _NOT_KNOWN

    def put(
        self, country: str, plus: bool, digits: str, reads: _Reads, answer: tuple[int, int] | None
    ) -> None:
        if not reads.exact or reads.depth >= len(digits) or len(self._known) >= self.LIMIT:
            return  # nothing learnt for other numbers (or no more room)
        self._known[(country, plus, len(digits), digits[: reads.depth])] = answer
        depths = self._depths.setdefault((country, plus, len(digits)), [])
        if reads.depth not in depths:
            bisect.insort(depths, reads.depth)


_ANSWERS = _Answers()


class _Reads:
    """How many leading digits of the number the regexes applied so far have looked at, in the
    sense of ``phone_patterns``; ``exact`` false when that is not known."""

    def __init__(self) -> None:
        self.depth = 0
        self.exact = phone_patterns.ANALYSABLE

    def saw(self, digits: int) -> None:
        self.depth = max(self.depth, digits)

    def full(self, desc: PhoneNumberDesc | None, text: str, offset: int) -> bool:
        """``_match_national_number(text, desc, False)``, ``text`` being the digits from ``offset``."""
        pattern = desc.national_number_pattern if desc is not None else None
        return self.fullmatch(pattern, text, offset) if pattern else False

    def fullmatch(self, pattern: str, text: str, offset: int) -> bool:
        depth = phone_patterns.full_depth(pattern, text) if self.exact else None
        if depth is None:
            self.exact = False
        else:
            self.saw(offset + depth)
        return re.fullmatch(pattern, text) is not None

    def match(self, pattern: str, text: str, offset: int) -> re.Match[str] | None:
        depth = phone_patterns.start_depth(pattern) if self.exact else None
        if depth is None:
            self.exact = False
        else:
            self.saw(offset + min(depth, len(text)))
        return re.match(pattern, text)


@lru_cache(maxsize=64)
def _metadata(country: str) -> PhoneMetadata | None:
    region = (country or "").upper()
    return PhoneMetadata.metadata_for_region(region, None) if region in SUPPORTED_REGIONS else None


def _digits_only(digits: str, plus: bool, metadata: PhoneMetadata, reads: _Reads) -> tuple[int, str] | None:
    """(country code, national significant number) as ``parse`` finds them in ``digits``
    (``plus``: it began with ``+``), or None where this path does not follow ``parse``."""
    if plus:
        code, national = _extract_country_code(digits)
        reads.saw(len(digits) - len(national) if code else 1 if digits[0] == "0" else 3)
        if code == 0:
            return None
    else:
        idd = metadata.international_prefix
        if idd is not None and reads.match(idd, digits, 0):
            return None  # dialled with an international prefix: parse's own way
        code, national = _own_country_code(digits, metadata, reads)
    if code:  # a country code was read from the number: its region's rules apply
        region = region_code_for_country_code(code)
        if region != metadata.id:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            if metadata is None:
                return None
    else:
        code = metadata.country_code
    if len(national) < _MIN_NSN:
        return None
    stripped = _strip_national_prefix(national, metadata, reads, len(digits) - len(national))
    if _test_number_length(stripped, metadata) not in _NOT_CHOSEN:
        national = stripped
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    return code, national


def _strip_national_prefix(number: str, metadata: PhoneMetadata, reads: _Reads, offset: int) -> str:
    """``_maybe_strip_national_prefix_carrier_code(number, metadata)[1]``, its regexes counted."""
    prefix = metadata.national_prefix_for_parsing
    if not number or not prefix:
        return number
    found = reads.match(prefix, number, offset)
    if not found:
        return number
    viable = reads.full(metadata.general_desc, number, offset)
    groups = found.groups()
    rule = metadata.national_prefix_transform_rule
    if rule and (not groups or groups[-1] is not None):  # digits rewritten, not stripped: parse's own way
        reads.exact = False
        return _maybe_strip_national_prefix_carrier_code(number, metadata)[1]
    rest = number[found.end() :]
    if viable and not reads.full(metadata.general_desc, rest, offset + found.end()):
        return number
    return rest


def _valid(code: int, national: str, reads: _Reads, offset: int) -> bool:
    """``phonenumbers.is_valid_number`` for the number ``+code national``, in a regex or two: the
    region is found as ``region_code_for_number`` finds it, then ``_fits`` the region's patterns."""
    regions = _regions(code)
    if len(regions) != 1:
        claimed = (
            entry for entry in regions if entry[1] is not None and _claims(entry, national, reads, offset)
        )
        regions = (next(claimed, (None, None, None)),)
    region, metadata, _ = regions[0]
    if (
        region is None
        or metadata is None
        or (region != REGION_CODE_FOR_NON_GEO_ENTITY and metadata.country_code != code)
    ):
        return False
    return _fits(metadata, national, reads, offset)


@lru_cache(maxsize=512)
def _regions(code: int) -> tuple[tuple[str, PhoneMetadata | None, str | None], ...]:
    """The regions sharing a country code, in phonenumbers' order, each with its metadata and the
    leading digits that claim a number for it (None: its patterns decide)."""
    found = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        found.append((region, metadata, metadata.leading_digits if metadata is not None else None))
    return tuple(found)


def _claims(entry: tuple[str, PhoneMetadata, str | None], national: str, reads: _Reads, offset: int) -> bool:
    """Whether a region that shares its country code takes the number (``_region_code_for_number_from_list``)."""
    _, metadata, leading = entry
    if leading is not None:
        return reads.match(leading, national, offset) is not None
    return _fits(metadata, national, reads, offset)


def _fits(metadata: PhoneMetadata, national: str, reads: _Reads, offset: int) -> bool:
    """``_number_type_helper(national, metadata) != UNKNOWN``: the general pattern and any one type's."""
    general, types = _patterns(metadata.id, metadata.country_code, len(national))
    if general is None or types is None:
        return False
    return reads.fullmatch(general, national, offset) and reads.fullmatch(types, national, offset)


@lru_cache(maxsize=4096)
def _patterns(region: str, code: int, length: int) -> tuple[str | None, str | None]:
    """For numbers of ``length`` digits: the general pattern and the number types' patterns as one
    alternation (a type whose possible lengths exclude ``length`` cannot match, as in
    ``_is_number_matching_desc``). None: nothing of that length is valid."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return None, None
    descs = [getattr(metadata, name) for name in _TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:  # else the helper never asks the mobile one
        descs.append(metadata.mobile)
    general = _usable([metadata.general_desc], length)
    types = _usable(descs, length)
    return (
        general[0] if general else None,
        "|".join(f"(?:{pattern})" for pattern in types) if types else None,
    )


def _usable(descs: list[PhoneNumberDesc | None], length: int) -> list[str]:
    return [
        desc.national_number_pattern
        for desc in descs
        if desc is not None
        and desc.national_number_pattern
        and (not desc.possible_length or length in desc.possible_length)
    ]


def _own_country_code(digits: str, metadata: PhoneMetadata, reads: _Reads) -> tuple[int, str]:
    """A number without ``+`` that starts with the country's own code: (that code, the rest)
    when ``_maybe_extract_country_code`` would strip it, else (0, all of it)."""
    code = str(metadata.country_code)
    reads.saw(min(len(code), len(digits)))
    if digits.startswith(code):
        general = metadata.general_desc
        national = _strip_national_prefix(digits[len(code) :], metadata, reads, len(code))
        if (
            not reads.full(general, digits, 0) and reads.full(general, national, len(digits) - len(national))
        ) or _test_number_length(digits, metadata) == ValidationResult.TOO_LONG:
            return metadata.country_code, national
    return 0, digits
