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

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    SUPPORTED_REGIONS,
    ValidationResult,
    _extract_country_code,
    _match_national_number,
    _maybe_strip_national_prefix_carrier_code,
    _test_number_length,
    region_code_for_country_code,
)

phonenumbers.enable_pattern_cache()  # metadata patterns stay compiled (a bounded set)

_TYPED = re.compile(r"\+?[0-9 ().\-]{3,40}")  # ASCII digits, the usual punctuation, a leading +
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
          "voicemail", "fixed_line")  # fmt: skip
_PUNCTUATION = str.maketrans("", "", "+ ().-")
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
    if not _TYPED.fullmatch(raw):
        return None
    metadata = _metadata(country)
    digits = raw.translate(_PUNCTUATION)
    if metadata is None or len(digits) < 3:  # fewer digits: parse's viability rules, not ours
        return None
    found = _digits_only(digits, raw[0] == "+", metadata)
    if found is None:
        return None
    code, national = found
    return f"+{code}{national}" if _valid(code, national) else None


@lru_cache(maxsize=64)
def _metadata(country: str) -> PhoneMetadata | None:
    region = (country or "").upper()
    return PhoneMetadata.metadata_for_region(region, None) if region in SUPPORTED_REGIONS else None


def _digits_only(digits: str, plus: bool, metadata: PhoneMetadata) -> tuple[int, str] | None:
    """(country code, national significant number) as ``parse`` finds them in ``digits``
    (``plus``: it began with ``+``), or None where this path does not follow ``parse``."""
    if plus:
        code, national = _extract_country_code(digits)
        if code == 0:
            return None
    else:
        idd = metadata.international_prefix
        if idd is not None and re.match(idd, digits):
            return None  # dialled with an international prefix: parse's own way
        code, national = _own_country_code(digits, metadata)
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
    _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if _test_number_length(stripped, metadata) not in _NOT_CHOSEN:
        national = stripped
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    return code, national


def _valid(code: int, national: str) -> bool:
    """``phonenumbers.is_valid_number`` for the number ``+code national``, in a regex or two: the
    region is found as ``region_code_for_number`` finds it, then ``_fits`` the region's patterns."""
    regions = _regions(code)
    if len(regions) != 1:
        claimed = (entry for entry in regions if entry[1] is not None and _claims(entry, national))
        regions = (next(claimed, (None, None, None)),)
    region, metadata, _ = regions[0]
    if (
        region is None
        or metadata is None
        or (region != REGION_CODE_FOR_NON_GEO_ENTITY and metadata.country_code != code)
    ):
        return False
    return _fits(metadata, national)


@lru_cache(maxsize=512)
def _regions(code: int) -> tuple[tuple[str, PhoneMetadata | None, re.Pattern[str] | None], ...]:
    """The regions sharing a country code, in phonenumbers' order, each with its metadata and the
    leading digits that claim a number for it (None: its patterns decide)."""
    found = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        leading = metadata.leading_digits if metadata is not None else None
        found.append((region, metadata, re.compile(leading) if leading is not None else None))
    return tuple(found)


def _claims(entry: tuple[str, PhoneMetadata, re.Pattern[str] | None], national: str) -> bool:
    """Whether a region that shares its country code takes the number (``_region_code_for_number_from_list``)."""
    _, metadata, leading = entry
    return bool(leading.match(national)) if leading is not None else _fits(metadata, national)


def _fits(metadata: PhoneMetadata, national: str) -> bool:
    """``_number_type_helper(national, metadata) != UNKNOWN``: the general pattern and any one type's."""
    general, types = _patterns(metadata.id, metadata.country_code, len(national))
    return (
        general is not None
        and types is not None
        and bool(general.fullmatch(national))
        and bool(types.fullmatch(national))
    )


@lru_cache(maxsize=4096)
def _patterns(region: str, code: int, length: int) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """For numbers of ``length`` digits: the general pattern and the number types' patterns as one
    alternation (a type whose possible lengths exclude ``length`` cannot match, as in
    ``_is_number_matching_desc``). None: nothing of that length is valid."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return None, None
    descs = [getattr(metadata, name) for name in _TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:  # else the helper never asks the mobile one
        descs.append(metadata.mobile)
    general = [pattern for pattern in _usable([metadata.general_desc], length)]
    types = _usable(descs, length)
    return (
        re.compile(general[0]) if general else None,
        re.compile("|".join(f"(?:{pattern})" for pattern in types)) if types else None,
    )


def _usable(descs: list[PhoneNumberDesc | None], length: int) -> list[str]:
    return [
        desc.national_number_pattern
        for desc in descs
        if desc is not None
        and desc.national_number_pattern
        and (not desc.possible_length or length in desc.possible_length)
    ]


def _own_country_code(digits: str, metadata: PhoneMetadata) -> tuple[int, str]:
    """A number without ``+`` that starts with the country's own code: (that code, the rest)
    when ``_maybe_extract_country_code`` would strip it, else (0, all of it)."""
    code = str(metadata.country_code)
    if digits.startswith(code):
        general = metadata.general_desc
        _, national, _ = _maybe_strip_national_prefix_carrier_code(digits[len(code) :], metadata)
        if (
            not _match_national_number(digits, general, False)
            and _match_national_number(national, general, False)
        ) or _test_number_length(digits, metadata) == ValidationResult.TOO_LONG:
            return metadata.country_code, national
    return 0, digits
