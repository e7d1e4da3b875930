"""Birth dates: every spelling the sources use, to ISO dates or month-day, vectorised.

``standardize_birth_dates(raw, today=None)`` takes the distinct raw values of a birth-date
column and returns, on the same index:

===============  ===========================================================================
birth_date       ISO ``YYYY-MM-DD`` (str) for a full, plausible date, else None
birth_year       pandas ``Int64`` (None for month-day only)
birth_month      ``Int64``
birth_day        ``Int64``
birth_precision  ``full`` | ``month_day`` (store cards: ``03-07``) | None
birth_issue      None | ``unparsed`` | ``impossible`` (1990-02-30; month 13 that cannot be a
                 swap) | ``day_month_swapped`` (``1990-25-03`` -> 1990-03-25: fixed and
                 flagged) | ``future`` | ``implausible_age`` (before 1900)
===============  ===========================================================================

Formats: ``1990-03-07``, ``1990/3/7``, ``1990.3.7``, ``19900307``, ``1990年3月7日``, any mix
of those separators, an optional time of day after a full date (``1990-03-07 00:00:00``,
``1990-03-07T00:00``), month-day only (``03-07``, ``3-7``, ``03/07``, ``3月7日``), full-width
digits and stray spaces. Only a swap that is *provable* is repaired (a "month" above 12 with a
"day" that is a valid month); ``1990-03-07`` might be a swapped 7 March but nothing in the
value says so, so it is kept. Values with ``impossible``, ``future`` or ``implausible_age`` keep
no date parts: a wrong date must not look like a known one downstream.

Everything is pandas string ops (``str.extract`` with three regexes) and numpy arithmetic; no
per-value Python.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

__all__ = ["BIRTH_DATE_COLUMNS", "standardize_birth_dates"]

BIRTH_DATE_COLUMNS = ("birth_date", "birth_year", "birth_month", "birth_day", "birth_precision", "birth_issue")

_STR = pd.StringDtype("pyarrow", na_value=np.nan)
_MIN_YEAR = 1900
_TIME = r"(?:T?[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
_SEP = r"[-/.年]"
_FULL = rf"^(?P<y>[0-9]{{4}}){_SEP}(?P<m>[0-9]{{1,2}})[-/.月](?P<d>[0-9]{{1,2}})日?{_TIME}$"
_COMPACT = r"^(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})$"
_MONTH_DAY = r"^(?P<m>[0-9]{1,2})[-/.月](?P<d>[0-9]{1,2})日?$"
_MAX_LEN = 40
# RE2 (pyarrow) syntax; \s would make pandas fall back to Python's re value by value
_SPACE = r"[\p{Z}\p{Cf}\t\n\x0b\f\r\x{85}]+"
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Days of ``month`` (1-12) in ``year``; a missing year (month-day) allows 29 February."""
    m = np.clip(month, 0, 12)
    days = _DAYS[m].copy()
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)) | (year < 0)
    days[(m == 2) & leap] = 29
    return days


def _valid(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    return (month >= 1) & (month <= 12) & (day >= 1) & (day <= _days_in_month(year, month))


def standardize_birth_dates(raw: pd.Series, today: date | None = None) -> pd.DataFrame:
    """Standardise distinct raw birth-date values; see the module docstring for the columns."""
    today = today or date.today()
    s = raw.astype(_STR).reset_index(drop=True).str.normalize("NFKC")  # positional inside
    s = s.str.replace(_SPACE, " ", regex=True).str.strip()
    present = (s.notna() & (s != "")).to_numpy(dtype=bool)
    s = s.where(s.str.len() <= _MAX_LEN)  # nothing longer is a date: no regex work on it
    s = s.str.replace(r"([0-9日]) +([0-9]{1,2}:)", r"\1T\2", regex=True)  # a time of day after the date
    s = s.str.replace(" ", "", regex=False)

    n = len(s)
    year = np.full(n, -1, dtype=np.int64)  # -1: no year (month-day)
    month = np.zeros(n, dtype=np.int64)
    day = np.zeros(n, dtype=np.int64)
    full = np.zeros(n, dtype=bool)
    month_day = np.zeros(n, dtype=bool)
    for pattern, is_full in ((_FULL, True), (_COMPACT, True), (_MONTH_DAY, False)):
        todo = present & ~full & ~month_day
        if not todo.any():
            break
        parts = s[todo].str.extract(pattern)
        hit = parts["m"].notna().to_numpy(dtype=bool)
        idx = np.flatnonzero(todo)[hit]
        month[idx] = parts["m"][hit].astype(np.int64).to_numpy()
        day[idx] = parts["d"][hit].astype(np.int64).to_numpy()
        if is_full:
            year[idx] = parts["y"][hit].astype(np.int64).to_numpy()
            full[idx] = True
        else:
            month_day[idx] = True

    parsed = full | month_day
    ok = parsed & _valid(year, month, day)
    swappable = parsed & ~ok & (month > 12) & _valid(year, day, month)
    month, day = np.where(swappable, day, month), np.where(swappable, month, day)
    ok |= swappable

    issue = np.full(n, None, dtype=object)
    issue[present & ~parsed] = "unparsed"
    issue[parsed & ~ok] = "impossible"
    issue[swappable] = "day_month_swapped"
    ordinal = year * 10_000 + month * 100 + day
    today_ord = today.year * 10_000 + today.month * 100 + today.day
    future = full & ok & (ordinal > today_ord)
    ancient = full & ok & (year < _MIN_YEAR)
    issue[future] = "future"
    issue[ancient] = "implausible_age"
    keep = ok & ~future & ~ancient
    keep_full = keep & full

    iso = np.full(n, None, dtype=object)
    if keep_full.any():
        digits = pd.Series(ordinal[keep_full]).astype(str)
        iso[keep_full] = (
            digits.str.slice(0, 4) + "-" + digits.str.slice(4, 6) + "-" + digits.str.slice(6, 8)
        ).to_numpy(dtype=object)
    precision = np.full(n, None, dtype=object)
    precision[keep_full] = "full"
    precision[keep & month_day] = "month_day"

    index = raw.index
    return pd.DataFrame(
        {
            "birth_date": pd.Series(iso, index=index, dtype=object),
            "birth_year": _int64(year, keep_full, index),
            "birth_month": _int64(month, keep, index),
            "birth_day": _int64(day, keep, index),
            "birth_precision": pd.Series(precision, index=index, dtype=object),
            "birth_issue": pd.Series(issue, index=index, dtype=object),
        },
        index=index,
    )


def _int64(values: np.ndarray, keep: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(np.where(keep, values, 0), ~keep), index=index)
