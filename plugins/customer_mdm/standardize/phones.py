"""Phone numbers to E.164, vectorised, with ``phonenumbers`` as the authority.

``standardize_phones(raw)`` takes the distinct raw values of a phone column and returns, on the
same index:

=============  =====================================================================
phone_e164     ``+8613812345678`` / ``+862161234567``; None when invalid or empty
phone_kind     ``mobile`` | ``landline`` | ``other`` (valid service numbers: 400/800,
               premium rate) | ``invalid`` | None (empty)
phone_valid    bool
phone_issue    None, or ``not_a_number``, ``multiple_numbers``, ``too_short``, ``too_long``,
               ``bad_prefix``, ``no_area_code``, ``bad_country_code``, ``bad_length``,
               ``service_number`` (valid, but a hotline rather than a person's phone)
=============  =====================================================================

How it works
------------
*Fast path* (``default_region="CN"``, the bulk of the data): each value is normalised with
pandas string ops (NFKC turns full-width digits, ``＋`` and ``（）`` into ASCII; the allowed
punctuation is spaces, dashes, dots, slashes and brackets), reduced to digits, and the country
code (``+86``, ``0086``, a bare ``86`` prefix) and the trunk ``0`` are stripped exactly the way
``phonenumbers.parse`` strips them. The national significant number is then matched with
``fullmatch`` against the patterns and possible lengths of phonenumbers' own CN metadata
(``general_desc``, ``mobile``, ``fixed_line`` and the special-rate types), the same test
``phonenumbers.is_valid_number`` / ``number_type`` apply. A value is decided on the fast path
only when it is unambiguously a valid mobile or fixed-line number.

*Slow path*: everything else (invalid numbers, foreign numbers written with ``+``, IDD carrier
prefixes such as ``17951``, numbers that are both or neither, special-rate numbers, other
default regions) goes through ``phonenumbers.parse`` + ``is_valid_number`` + ``number_type``,
cached per distinct normalised text. Invalid numbers are flagged with a reason; nothing is
guessed: a number that phonenumbers does not accept is never repaired.

Values with letters or other text (``13812345678 ext 8``, ``手机13812345678``) are
``not_a_number``: stripping words out of a phone field is a guess.
"""

from __future__ import annotations

import logging
import re
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

__all__ = ["PHONE_COLUMNS", "standardize_phones"]

log = logging.getLogger(__name__)

PHONE_COLUMNS = ("phone_e164", "phone_kind", "phone_valid", "phone_issue")

# Regexes are written for RE2 (pyarrow): no \s, \d or \uXXXX, which make pandas fall back to
# Python's re, value by value. Whitespace is folded to " " first. _ALLOWED: the punctuation people
# put in phone numbers (after NFKC): spaces, dashes of all kinds, dots, slashes, brackets, a "+".
_SPACE = r"[\p{Z}\t\n\x0b\f\r\x{85}]+"
_INVISIBLE = r"\p{Cf}+"  # zero-width spaces, BOM, direction marks
_ALLOWED = r"^[0-9 \-\x{2010}-\x{2015}\x{2212}./()\[\]+]*$"
_LEADING_PLUS = r"^[ (\[]*\+"
_MULTIPLE = r"[0-9]{5,}[ \-.]*[,;、|/]+ *\+?[0-9(][0-9 \-.()]{5,}"
_MAX_CHARS = 60  # longer values are not one phone number: no regex work on them
_MAX_DIGITS = 20  # longer than any E.164 number with prefixes: too long without asking phonenumbers

_KIND_OF_TYPE = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
}

_PARSE_ISSUE = {
    NumberParseException.INVALID_COUNTRY_CODE: "bad_country_code",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}

_POSSIBLE_ISSUE = {
    ValidationResult.TOO_SHORT: "too_short",
    ValidationResult.TOO_LONG: "too_long",
    ValidationResult.INVALID_COUNTRY_CODE: "bad_country_code",
    ValidationResult.INVALID_LENGTH: "bad_length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "no_area_code",
    ValidationResult.IS_POSSIBLE: "bad_prefix",
}


class _Result(NamedTuple):
    e164: str | None
    kind: str | None
    valid: bool
    issue: str | None


# ----------------------------------------------------------------------------- metadata
class _RegionPatterns(NamedTuple):
    country_code: str
    general: str
    general_lengths: tuple[int, ...]
    max_length: int
    mobile: str
    mobile_lengths: tuple[int, ...]
    fixed: str
    fixed_lengths: tuple[int, ...]
    special: tuple[tuple[str, tuple[int, ...]], ...]  # types checked before fixed/mobile by number_type
    carrier_prefix: str  # national_prefix_for_parsing minus the plain trunk prefix: leave those to phonenumbers


# The CN prefix rules the fast path mirrors. If a phonenumbers release changes them, the fast path
# switches itself off (every value goes through phonenumbers) until it is reviewed.
_CN_PREFIX_RULES = {
    "national_prefix": "0",
    "national_prefix_for_parsing": r"(1(?:[12]\d|79)\d\d)|0",
    "international_prefix": r"00|1(?:[12]\d|79)\d\d00",
    "national_prefix_transform_rule": None,
}


@cache
def _cn_patterns() -> _RegionPatterns | None:
    md = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    if md is None or any(getattr(md, k) != v for k, v in _CN_PREFIX_RULES.items()):
        log.warning("phonenumbers' CN prefix rules changed: phone fast path disabled")
        return None
    descs = {}
    for name in ("general_desc", "mobile", "fixed_line"):
        desc = getattr(md, name)
        if desc is None or not desc.national_number_pattern or not desc.possible_length:
            log.warning("phonenumbers' CN metadata has no %s: phone fast path disabled", name)
            return None
        descs[name] = (desc.national_number_pattern, tuple(desc.possible_length))
    special = []
    for name in ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail"):
        desc = getattr(md, name)
        if desc is not None and desc.national_number_pattern:
            special.append((desc.national_number_pattern, tuple(desc.possible_length)))
    return _RegionPatterns(
        country_code=str(md.country_code),
        general=descs["general_desc"][0],
        general_lengths=descs["general_desc"][1],
        max_length=max(descs["general_desc"][1]),
        mobile=descs["mobile"][0],
        mobile_lengths=descs["mobile"][1],
        fixed=descs["fixed_line"][0],
        fixed_lengths=descs["fixed_line"][1],
        special=tuple(special),
        # the carrier-selection part of national_prefix_for_parsing (IP dialling prefixes such as 17951)
        carrier_prefix=r"1(?:[12]\d|79)\d\d",
    )


def _matches(s: pd.Series, pattern: str, lengths: tuple[int, ...] | None = None) -> pd.Series:
    ok = s.str.fullmatch(pattern).fillna(False).astype(bool)
    if lengths is not None:
        ok &= s.str.len().isin(lengths)
    return ok


# ----------------------------------------------------------------------------- slow path
@lru_cache(maxsize=200_000)
def _slow(text: str, region: str) -> _Result:
    """phonenumbers' own verdict on one (normalised) value."""
    try:
        num = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return _Result(None, "invalid", False, _PARSE_ISSUE.get(exc.error_type, "not_a_number"))
    if phonenumbers.is_valid_number(num):
        kind = _KIND_OF_TYPE.get(phonenumbers.number_type(num), "other")
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        return _Result(e164, kind, True, "service_number" if kind == "other" else None)
    issue = _POSSIBLE_ISSUE.get(phonenumbers.is_possible_number_with_reason(num), "bad_prefix")
    if region == "CN" and num.country_code == 86:
        # mobile-shaped numbers: report by length (a truncated mobile is "too_short", not "bad_prefix")
        nsn = _cn_nsn(text)
        if nsn.startswith("1") and not nsn.startswith(("10", "11", "12")):
            issue = "too_short" if len(nsn) < 11 else "too_long" if len(nsn) > 11 else "bad_prefix"
        elif nsn.startswith(("11", "12")) and len(nsn) == 11:
            issue = "bad_prefix"
        elif issue == "bad_prefix" and len(nsn) <= 8 and not nsn.startswith("1"):
            issue = "no_area_code"
        elif issue == "bad_prefix":
            # a landline one digit short or long of its area's length (0755-1234567: Shenzhen has 8)
            fixed = _cn_fixed_pattern()
            if fixed and any(re.fullmatch(fixed, nsn + d) for d in "0123456789"):
                issue = "too_short"
            elif fixed and re.fullmatch(fixed, nsn[:-1]):
                issue = "too_long"
    return _Result(None, "invalid", False, issue)


@cache
def _cn_fixed_pattern() -> str | None:
    md = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    desc = md.fixed_line if md is not None else None
    return desc.national_number_pattern if desc is not None else None


def _cn_nsn(text: str) -> str:
    """Digits of a CN number without country code and trunk 0 (for reporting only)."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.lstrip("([ ").startswith("+") and digits.startswith("86"):
        digits = digits[2:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) > 12:
        digits = digits[2:]
    return digits[1:] if digits.startswith("0") else digits


# ----------------------------------------------------------------------------- public API
_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # RE2 regexes (\p{Z}, \x{2010})


def _as_text(raw: pd.Series) -> pd.Series:
    """Any Series as pyarrow-backed ``str`` (missing stays missing, non-strings become their str())."""
    return raw.astype(_STR)


def standardize_phones(raw: pd.Series, default_region: str = "CN") -> pd.DataFrame:
    """Standardise distinct raw phone values; see the module docstring for the columns."""
    region = (default_region or "CN").upper()
    text = _as_text(raw).reset_index(drop=True)  # positional inside; raw.index on the way out
    n = len(text)
    e164 = np.full(n, None, dtype=object)
    kind = np.full(n, None, dtype=object)
    valid = np.zeros(n, dtype=bool)
    issue = np.full(n, None, dtype=object)

    norm = text.str.normalize("NFKC").str.replace(_INVISIBLE, "", regex=True)
    norm = norm.str.replace(_SPACE, " ", regex=True).str.strip()
    present = (norm.notna() & (norm != "")).to_numpy(dtype=bool)
    overlong = present & (norm.str.len().fillna(0) > _MAX_CHARS).to_numpy(dtype=bool)
    allowed = norm.str.fullmatch(_ALLOWED).fillna(False).to_numpy(dtype=bool)
    norm = norm.where(~overlong)  # no further regex work on them
    plus = norm.str.match(_LEADING_PLUS).fillna(False).to_numpy(dtype=bool)
    plus_ok = (norm.str.count(r"\+").fillna(0).to_numpy() == plus.astype(int)) & allowed
    multiple = present & norm.str.contains(_MULTIPLE).fillna(False).to_numpy(dtype=bool)
    digits = norm.str.replace(r"[^0-9]", "", regex=True).fillna("")
    n_digits = digits.str.len().to_numpy()

    _set(kind, issue, multiple, "invalid", "multiple_numbers")
    _set(kind, issue, present & ~multiple & ~(allowed & plus_ok), "invalid", "not_a_number")
    _set(kind, issue, overlong & allowed, "invalid", "too_long")
    ok_text = present & ~overlong & ~multiple & allowed & plus_ok
    _set(kind, issue, ok_text & (n_digits == 0), "invalid", "not_a_number")
    _set(kind, issue, ok_text & (n_digits > _MAX_DIGITS), "invalid", "too_long")
    todo = ok_text & (n_digits > 0) & (n_digits <= _MAX_DIGITS)

    fast = np.zeros(n, dtype=bool)
    if region == "CN" and todo.any() and _cn_patterns() is not None:
        fast_mask, fast_e164, fast_kind = _fast_cn(digits[todo], plus[todo])
        idx = np.flatnonzero(todo)[fast_mask]
        e164[idx] = fast_e164
        kind[idx] = fast_kind
        valid[idx] = True
        fast[idx] = True

    slow = np.flatnonzero(todo & ~fast)
    if len(slow):
        # normalised text: phonenumbers sees the same digits and leading "+" as the fast path
        slow_text = np.where(plus[slow], "+", "") + digits.to_numpy(dtype=object)[slow]
        for i, t in zip(slow, slow_text, strict=True):
            r = _slow(str(t), region)
            e164[i], kind[i], valid[i], issue[i] = r.e164, r.kind, r.valid, r.issue

    return pd.DataFrame(
        {
            "phone_e164": pd.Series(e164, index=raw.index, dtype=object),
            "phone_kind": pd.Series(kind, index=raw.index, dtype=object),
            "phone_valid": pd.Series(valid, index=raw.index, dtype=bool),
            "phone_issue": pd.Series(issue, index=raw.index, dtype=object),
        },
        index=raw.index,
    )


def _set(kind: np.ndarray, issue: np.ndarray, mask: np.ndarray, k: str, reason: str) -> None:
    kind[mask] = k
    issue[mask] = reason


def _fast_cn(digits: pd.Series, plus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decide the unambiguous valid CN numbers; returns (mask, e164, kind) for the decided ones.

    Mirrors ``phonenumbers.parse``: country code from ``+86`` / IDD ``00`` 86 / a bare ``86``
    prefix (stripped when the number is too long with it or only viable without it), then the
    national prefix ``0``. Anything near the edges of those rules is left to the slow path.
    """
    p = _cn_patterns()
    assert p is not None
    cc = p.country_code
    digits = digits.reset_index(drop=True)
    plus_s = pd.Series(plus)

    def strip_trunk(s: pd.Series) -> tuple[pd.Series, pd.Series]:
        carrier = s.str.match(p.carrier_prefix).fillna(False).astype(bool)
        out = s.where(~s.str.startswith("0"), s.str.slice(1))
        return out, carrier

    # +86 ...
    with_plus = plus_s & digits.str.startswith(cc)
    # 0086 ... (IDD 00, then the country code)
    idd = ~plus_s & digits.str.startswith("00" + cc)
    # 86 ... without + (phonenumbers: strip when too long or only viable without it)
    bare = ~plus_s & ~idd & digits.str.startswith(cc)
    after_cc = digits.str.slice(len(cc))
    after_cc_np, after_cc_carrier = strip_trunk(after_cc)
    gen_full = digits.str.fullmatch(p.general).fillna(False).astype(bool)
    gen_pot = after_cc_np.str.fullmatch(p.general).fillna(False).astype(bool)
    bare_strip = bare & ((~gen_full & gen_pot) | (digits.str.len() > p.max_length))

    national = digits.copy()
    national = national.where(~(with_plus | bare_strip), after_cc)
    national = national.where(~idd, digits.str.slice(2 + len(cc)))
    # a bare 86 prefix has had its trunk prefix stripped once already inside the country-code check
    national = national.where(~bare_strip, after_cc_np)
    unsure = (plus_s & ~with_plus) | (~plus_s & ~idd & digits.str.startswith("00"))
    unsure |= bare & after_cc_carrier

    nsn, carrier = strip_trunk(national)
    unsure |= carrier | nsn.str.startswith("0") | (nsn.str.len() == 0)

    gen = _matches(nsn, p.general, p.general_lengths)
    special = pd.Series(False, index=nsn.index)
    for pattern, lengths in p.special:
        special |= _matches(nsn, pattern, lengths)
    mob = _matches(nsn, p.mobile, p.mobile_lengths)
    fix = _matches(nsn, p.fixed, p.fixed_lengths)
    decided = (gen & ~special & (mob ^ fix) & ~unsure).to_numpy(dtype=bool)
    e164 = ("+" + cc + nsn[decided]).to_numpy(dtype=object)
    kind = np.where(mob[decided].to_numpy(dtype=bool), "mobile", "landline").astype(object)
    return decided, e164, kind
