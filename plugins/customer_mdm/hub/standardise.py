"""The pipeline's standardisation of single typed-in values (lookups, self-service changes).

Phones go through :func:`customer_mdm.standardize.phones.standardize_phones` (the same code the
standardise step runs); e-mails through a Python rendering of the dbt macros ``email_clean`` and
``email_is_valid`` plus the seed ``ref_email_domain_corrections``, as int_customer_records does.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from typing import Any

from customer_mdm.config import Settings

_EMAIL_VALID = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+([.][a-z0-9-]+)*[.][a-z]{2,}$")


def standard_mobile(text: str | None) -> str | None:
    """E.164 of a valid phone number as the pipeline standardises it, else None."""
    if text is None or not str(text).strip() or len(str(text)) > 64:
        return None
    fast = fast_phone(str(text))
    if fast is not None:
        found = dict(fast)
        return str(found["phone_e164"]) if found["phone_valid"] and isinstance(found["phone_e164"], str) else None
    import pandas as pd

    from customer_mdm.standardize.phones import standardize_phones

    row = standardize_phones(pd.Series([str(text)], dtype=object)).iloc[0]
    value = row["phone_e164"]
    return str(value) if bool(row["phone_valid"]) and isinstance(value, str) else None


@functools.cache
def _domain_fixes(root: str) -> dict[str, str]:
    path = Settings.from_env(env={}, project_root=root).dbt_project_dir / "seeds" / "ref_email_domain_corrections.csv"
    try:
        with path.open(encoding="utf-8") as fh:
            return {r["typo_domain"]: r["domain"] for r in csv.DictReader(fh)}
    except FileNotFoundError:
        return {}


def standard_email(text: str | None, settings: Settings | None = None) -> str | None:
    """The e-mail as int_customer_records standardises it (clean, domain typo fixed), else None."""
    if text is None or len(str(text)) > 320:
        return None
    cleaned = str(text).lower()
    for old, new in ((" ", ""), ("\t", ""), ("\u3000", ""), ("＠", "@"), ("。", ".")):
        cleaned = cleaned.replace(old, new)
    if cleaned.count("@") != 1:
        return None
    local, domain = cleaned.split("@")
    root = str((settings or Settings.from_env(env={})).project_root)
    domain = _domain_fixes(root).get(domain, domain)
    email = f"{local}@{domain}"
    return email if _EMAIL_VALID.match(email) else None


def clean_text(text: str | None, limit: int = 500) -> str | None:
    """NFKC, trimmed, at most ``limit`` characters; None when empty."""
    if text is None:
        return None
    value = unicodedata.normalize("NFKC", str(text)).strip()
    return value[:limit] or None


# ============================================================================ scalar fast path
# The pipeline's standardisers (customer_mdm.standardize) work on pandas Series of distinct
# values: a one-value Series costs 5-20 ms each, too slow while a customer waits. The functions
# below give the same result for ONE value in plain Python (microseconds, cached per value),
# for the shapes typed into forms; anything else (other scripts, unusual characters) returns
# None and the caller takes the DataFrame path. tests/hub/test_fast_path.py checks that both
# agree on every raw value of a generated landing zone and on generated variants of them.

#: characters whose NFKC form and Unicode classes both engines agree on: printable ASCII, the
#: full-width forms, the ideographic space and the basic CJK block (no Cf/Cc/Z but the spaces)
_SAFE = re.compile(r"[\x20-\x7e\uff01-\uff5e\u3000\u4e00-\u9fa5]*")
_HAN_ONLY = re.compile(r"[\u4e00-\u9fa5]+")
_HAN_SPACED = re.compile(r"[\u4e00-\u9fa5 ]+")
_HAN_GAP = re.compile(r"([\u4e00-\u9fa5]) ([\u4e00-\u9fa5])")
_LATIN_ONLY = re.compile(r"[A-Za-z0-9 ._'\-]+")


def _safe_nfkc(raw: str) -> str | None:
    """NFKC with whitespace runs folded to one space and trimmed, or None when ``raw`` holds a
    character outside :data:`_SAFE` (the DataFrame path decides those)."""
    if not _SAFE.fullmatch(raw):
        return None
    return _fold(unicodedata.normalize("NFKC", raw))


def _fold(text: str) -> str:
    return " ".join(part for part in text.split(" ") if part)


# ---------------------------------------------------------------------------- names
@functools.lru_cache(maxsize=100_000)
def fast_name(raw: str) -> tuple[tuple[str, Any], ...] | None:
    """``standardize_names`` of one value (its columns as pairs), or None: not a fast-path shape."""
    from customer_mdm.standardize import names as n

    if not _SAFE.fullmatch(raw):
        return None
    s = _fold(unicodedata.normalize("NFKC", raw))
    if not s or len(s) > n._MAX_CHARS:
        return None
    if _HAN_SPACED.fullmatch(s):
        joined = s
        for _ in range(3):  # as the DataFrame path: each pass joins every other gap
            joined = _HAN_GAP.sub(r"\1\2", joined)
        return _fast_han_name(s, joined) if " " not in joined else None
    if _LATIN_ONLY.fullmatch(s) and re.search(r"[A-Za-z]", s):
        return _fast_latin_name(s)
    return None


def _name_result(
    s: str, std: str | None, script: str, pinyin: str | None, handle: bool, issue: str | None
) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.standardize import names as n

    fuzzy = sorted_key = None
    if pinyin is not None:
        fuzzy = re.sub(r"\b([zcs])h", r"\1", pinyin)
        fuzzy = re.sub(r"\bn([aeiouv])", r"l\1", fuzzy)
        fuzzy = re.sub(r"\bf", "h", fuzzy)
        fuzzy = re.sub(r"\bhu([ao])", r"w\1", fuzzy)
        fuzzy = re.sub(r"\bhu\b", "wu", fuzzy)
        fuzzy = re.sub(r"([aei])ng\b", r"\1n", fuzzy)
        sorted_key = " ".join(sorted(pinyin.split()))
    values = (std, script, pinyin, fuzzy, sorted_key, handle, issue)
    return tuple(zip(n.NAME_COLUMNS, values, strict=True))


def _fast_han_name(s: str, joined: str) -> tuple[tuple[str, Any], ...] | None:
    from customer_mdm.standardize import names as n

    std = n._t2s().convert(joined)
    if not _HAN_ONLY.fullmatch(std):
        return None
    honorific = False
    m = re.match(n._HAN_HONORIFIC, std)
    if m:
        std, honorific = m.group(1), True
    head2, head1 = n._SURNAME_2.get(std[:2]), n._SURNAME_1.get(std[:1])
    if head2 is not None:
        py = head2 + " " + "".join(f" {n._char_pinyin(c)} " for c in std[2:])
    elif head1 is not None:
        py = head1 + " " + "".join(f" {n._char_pinyin(c)} " for c in std[1:])
    else:
        py = "".join(f" {n._char_pinyin(c)} " for c in std)
    pinyin: str | None = re.sub(r"[^a-z]+", " ", py.lower()).strip() or None
    placeholder = std.lower() in n._PLACEHOLDERS or s.lower() in n._PLACEHOLDERS
    too_long = len(std) > n._MAX_HAN or len(std) > n._MAX_DOTTED
    issue = None
    if not honorific and len(std) == 1:
        issue = "too_short"
    if honorific:
        issue = "honorific"
    if placeholder:
        issue = "placeholder"
    if too_long:
        issue = "too_long"
    if placeholder or too_long:
        pinyin = None
    return _name_result(s, None if placeholder else std, "han", pinyin, False, issue)


def _fast_latin_name(s: str) -> tuple[tuple[str, Any], ...] | None:
    from customer_mdm.standardize import names as n

    std = s
    honorific = False
    m = re.match(n._LATIN_HONORIFIC, std)
    if m:
        std, honorific = m.group(1), True
    letters = re.sub(r"[^a-z]+", " ", std.lower()).strip() or None
    pinyin: str | None = None
    count = 0
    if letters is not None:
        runs = letters.split()
        segs = [None if r in n._ENGLISH_NAMES else n.segment_pinyin(r) for r in runs]
        if runs and all(x is not None for x in segs):
            sylls = [x for seg in segs if seg for x in seg]
            pinyin, count = " ".join(sylls), len(sylls)
        else:
            pinyin = letters
    odd = re.search(r"[^A-Za-z ·'.\-]", s) is not None
    handle = not honorific and 2 <= count <= 4 and (" " not in std or re.search(r"[0-9_]", std) is not None)
    if not handle:
        std = std.title()
    placeholder = std.lower() in n._PLACEHOLDERS or s.lower() in n._PLACEHOLDERS
    too_long = len(std) > n._MAX_LATIN
    issue = None
    if odd and not handle:
        issue = "not_a_name"
    if honorific:
        issue = "honorific"
    if placeholder:
        issue = "placeholder"
    if too_long:
        issue = "too_long"
    if placeholder or too_long:
        pinyin = None
    return _name_result(s, None if placeholder else std, "pinyin_handle" if handle else "latin", pinyin, handle, issue)


# ---------------------------------------------------------------------------- phones
@functools.lru_cache(maxsize=100_000)
def fast_phone(raw: str) -> tuple[tuple[str, Any], ...] | None:
    """``standardize_phones`` (region CN) of one value, or None: not a fast-path shape."""
    from customer_mdm.standardize import phones as ph

    norm = _safe_nfkc(raw)
    if norm is None:
        return None

    def out(e164: str | None, kind: str | None, valid: bool, issue: str | None) -> tuple[tuple[str, Any], ...]:
        return tuple(zip(ph.PHONE_COLUMNS, (e164, kind, valid, issue), strict=True))

    if not norm:
        return out(None, None, False, None)
    overlong = len(norm) > ph._MAX_CHARS
    allowed = re.fullmatch(r"[0-9 \-\u2010-\u2015\u2212./()\[\]+]*", norm) is not None
    if overlong:
        return out(None, "invalid", False, "too_long" if allowed else "not_a_number")
    plus = re.match(r"[ (\[]*\+", norm) is not None
    plus_ok = norm.count("+") == int(plus) and allowed
    if re.search(r"[0-9]{5,}[ \-.]*[,;、|/]+ *\+?[0-9(][0-9 \-.()]{5,}", norm):
        return out(None, "invalid", False, "multiple_numbers")
    if not (allowed and plus_ok):
        return out(None, "invalid", False, "not_a_number")
    digits = re.sub(r"[^0-9]", "", norm)
    if not digits:
        return out(None, "invalid", False, "not_a_number")
    if len(digits) > ph._MAX_DIGITS:
        return out(None, "invalid", False, "too_long")
    # phonenumbers' own verdict: the vectorised CN fast path decides only numbers it agrees on
    r = ph._slow(("+" if plus else "") + digits, "CN")
    return out(r.e164, r.kind, r.valid, r.issue)


# ---------------------------------------------------------------------------- birth dates
@functools.lru_cache(maxsize=100_000)
def fast_birth_date(raw: str) -> tuple[tuple[str, Any], ...] | None:
    """``standardize_birth_dates`` of one value, or None: not a fast-path shape."""
    from datetime import date

    from customer_mdm.standardize import dates as d

    s = _safe_nfkc(raw)
    if s is None:
        return None
    cols = d.BIRTH_DATE_COLUMNS

    def out(*values: Any) -> tuple[tuple[str, Any], ...]:
        return tuple(zip(cols, values, strict=True))

    if not s:
        return out(None, None, None, None, None, None)
    if len(s) > d._MAX_LEN:
        return out(None, None, None, None, None, "unparsed")
    s = re.sub(r"([0-9日]) +([0-9]{1,2}:)", r"\1T\2", s).replace(" ", "")
    year, month, day, full = -1, 0, 0, False
    for pattern, is_full in ((d._FULL, True), (d._COMPACT, True), (d._MONTH_DAY, False)):
        m = re.fullmatch(pattern.removeprefix("^").removesuffix("$"), s)
        if m:
            month, day, full = int(m["m"]), int(m["d"]), is_full
            year = int(m["y"]) if is_full else -1
            break
    else:
        return out(None, None, None, None, None, "unparsed")

    def valid(y: int, mo: int, dd: int) -> bool:
        if not 1 <= mo <= 12 or dd < 1:
            return False
        days = int(d._DAYS[mo])
        if mo == 2 and ((y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) or y < 0):
            days = 29
        return dd <= days

    ok = valid(year, month, day)
    issue = None
    if not ok and month > 12 and valid(year, day, month):
        month, day, ok, issue = day, month, True, "day_month_swapped"
    if not ok:
        return out(None, None, None, None, None, "impossible")
    today = date.today()
    ordinal = year * 10_000 + month * 100 + day
    if full and ordinal > today.year * 10_000 + today.month * 100 + today.day:
        return out(None, None, None, None, None, "future")
    if full and year < d._MIN_YEAR:
        return out(None, None, None, None, None, "implausible_age")
    if full:
        return out(f"{year:04d}-{month:02d}-{day:02d}", year, month, day, "full", issue)
    return out(None, None, month, day, "month_day", issue)


# ---------------------------------------------------------------------------- regions, addresses
@functools.lru_cache(maxsize=100_000)
def fast_region(province: str | None, city: str | None, district: str | None) -> tuple[tuple[str, Any], ...]:
    """``standardize_regions`` of one row (the same per-row function, without the DataFrame)."""
    from customer_mdm.standardize.regions import _standardize_one

    cols = ("province_std", "city_std", "district_std", "region_issue")
    values = _standardize_one(province, city, district) if (province or city or district) else (None,) * 4
    return tuple(zip(cols, values, strict=True))


@functools.lru_cache(maxsize=100_000)
def fast_address(raw: str) -> tuple[tuple[str, Any], ...]:
    """``parse_addresses`` of one value (the same per-value parser, without the DataFrame)."""
    from customer_mdm.standardize.regions import _HeadCache, _parse_one

    cols = ("province_std", "city_std", "district_std", "street", "address_issue")
    return tuple(zip(cols, _parse_one(raw, _HeadCache()), strict=True))
