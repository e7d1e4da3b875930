"""customer_mdm.standardize.phones: every spelling of the contract, robustness, and accuracy
on generated landing data (every formatting variant of a person's mobile -> their E.164)."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_mdm.standardize.phones import PHONE_COLUMNS, _cn_patterns, standardize_phones
from mdm_devtools.generate import generate_landing
from tests.standardize.casetable import CaseTable, raw_values

E164 = re.compile(r"^\+\d{8,15}$")


CASES = CaseTable(standardize_phones)

table = CASES.table


def one(value: object) -> dict[str, object]:
    return CASES.row(value).to_dict()


# ----------------------------------------------------------------------------- table-driven
MOBILE = "+8613812345678"


@pytest.mark.parametrize(
    "raw",
    table(
        [
            "13812345678",
            "138-1234-5678",
            "+86 138 1234 5678",
            "86-13812345678",
            "8613812345678",
            "(+86)13812345678",
            "(+86) 138 1234 5678",
            "+8613812345678",
            "0086 138 1234 5678",
            "008613812345678",
            "１３８１２３４５６７８",  # full-width digits
            "＋８６ １３８ １２３４ ５６７８",
            "138 1234 5678",
            " 13812345678 ",
            "138.1234.5678",
            "138 - 1234 - 5678",
            "\t13812345678\n",
            "013812345678",  # trunk 0 in front of a mobile: phonenumbers accepts it
            "17951 13812345678",  # IP-dialling carrier prefix (slow path)
        ]
    ),
)
def test_mobile_variants(raw: str) -> None:
    assert one(raw) == {"phone_e164": MOBILE, "phone_kind": "mobile", "phone_valid": True, "phone_issue": None}


@pytest.mark.parametrize(
    ("raw", "e164"),
    table(
        [
            ("021-61234567", "+862161234567"),
            ("(021)61234567", "+862161234567"),
            ("（021）61234567", "+862161234567"),
            ("02161234567", "+862161234567"),
            ("021 6123 4567", "+862161234567"),
            ("+86 21 6123 4567", "+862161234567"),
            ("+86 (0)21 61234567", "+862161234567"),
            ("86-21-61234567", "+862161234567"),
            ("010-12345678", "+861012345678"),
            ("0755-12345678", "+8675512345678"),
            ("0717-1234567", "+867171234567"),  # a 4-digit area code with a 7-digit number
            ("0660-3234567", "+866603234567"),
        ]
    ),
)
def test_landlines(raw: str, e164: str) -> None:
    assert one(raw) == {"phone_e164": e164, "phone_kind": "landline", "phone_valid": True, "phone_issue": None}


@pytest.mark.parametrize(
    ("raw", "issue"),
    table(
        [
            ("1381234567", "too_short"),  # a digit missing
            ("138123456788", "too_long"),  # a digit too many
            ("12812345678", "bad_prefix"),  # no mobile range starts with 12
            ("11012345678", "bad_prefix"),
            ("010-123456789", "too_long"),
            ("0755-1234567", "too_short"),  # Shenzhen numbers have 8 digits: phonenumbers says invalid
            ("010-1234567", "too_short"),
            ("61234567", "no_area_code"),
            ("abc", "not_a_number"),
            ("手机13812345678", "not_a_number"),  # text around a number is not repaired
            ("13812345678 ext 12", "not_a_number"),
            ("+", "not_a_number"),
            ("---", "not_a_number"),
            ("13812345678/13912345678", "multiple_numbers"),
            ("13812345678, 13912345678", "multiple_numbers"),
            ("1" * 40, "too_long"),
            ("+999 1234 5678", "bad_country_code"),
            ("138+1234+5678", "not_a_number"),
        ]
    ),
)
def test_invalid_is_flagged_not_guessed(raw: str, issue: str) -> None:
    assert one(raw) == {"phone_e164": None, "phone_kind": "invalid", "phone_valid": False, "phone_issue": issue}


@pytest.mark.parametrize("raw", table([None, np.nan, "", "   ", "\u3000"]))
def test_empty(raw: object) -> None:
    assert one(raw) == {"phone_e164": None, "phone_kind": None, "phone_valid": False, "phone_issue": None}


@pytest.mark.parametrize(
    ("raw", "e164", "kind", "issue"),
    table(
        [
            ("+1 415 555 2671", "+14155552671", "mobile", None),  # US: fixed-line-or-mobile
            ("+44 20 7946 0958", "+442079460958", "landline", None),
            ("+852 9123 4567", "+85291234567", "mobile", None),
            ("00852 9123 4567", "+85291234567", "mobile", None),
            ("400-812-3123", "+864008123123", "other", "service_number"),
            ("800-810-1234", "+868008101234", "other", "service_number"),
        ]
    ),
)
def test_foreign_and_service_numbers(raw: str, e164: str, kind: str, issue: str | None) -> None:
    assert one(raw) == {"phone_e164": e164, "phone_kind": kind, "phone_valid": True, "phone_issue": issue}


def test_frame_shape_index_and_dtypes() -> None:
    raw = pd.Series(["13812345678", None, "x", "021-61234567"], index=[10, 3, 7, 99], dtype=object)
    out = standardize_phones(raw)
    assert list(out.columns) == list(PHONE_COLUMNS)
    assert out.index.equals(raw.index)
    assert out["phone_valid"].dtype == bool
    assert out.loc[3, "phone_e164"] is None and out.loc[7, "phone_issue"] == "not_a_number"
    assert out.loc[99, "phone_e164"] == "+862161234567"
    # str dtype input and an empty series work too
    assert standardize_phones(raw.astype("str")).equals(out)
    empty = standardize_phones(pd.Series([], dtype=object))
    assert empty.empty and list(empty.columns) == list(PHONE_COLUMNS)


def test_other_default_region_uses_phonenumbers() -> None:
    out = standardize_phones(pd.Series(["020 7946 0958", "07911 123456", "13812345678"]), default_region="GB")
    assert out["phone_e164"].tolist() == ["+442079460958", "+447911123456", None]
    assert out["phone_kind"].tolist() == ["landline", "mobile", "invalid"]


# ----------------------------------------------------------------------------- fast path == phonenumbers
def _phonenumbers_verdict(raw: str) -> tuple[str | None, str]:
    try:
        num = phonenumbers.parse(unicodedata.normalize("NFKC", raw), "CN")
    except phonenumbers.NumberParseException:
        return None, "invalid"
    if not phonenumbers.is_valid_number(num):
        return None, "invalid"
    kind = {
        phonenumbers.PhoneNumberType.MOBILE: "mobile",
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
        phonenumbers.PhoneNumberType.FIXED_LINE: "landline",
    }.get(phonenumbers.number_type(num), "other")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164), kind


def test_fast_path_agrees_with_phonenumbers(generated_phones: list[str]) -> None:
    """On every generated value and on random digit strings with every prefix and separator, the
    result equals phonenumbers.parse + is_valid_number + number_type on the raw value."""
    assert _cn_patterns() is not None, "phonenumbers' CN prefix rules changed: review the fast path"
    rng = np.random.default_rng(20261120)
    prefixes = ["", "", "", "+86", "86", "0086", "0", "00", "+1", "17951", "+86 0", "86-0", "+852", "0086 0", "(+86)"]
    values = set(generated_phones)
    for _ in range(6000):
        length = int(rng.integers(5, 14))
        digits = str(rng.choice(list("1111123456789"))) + "".join(rng.choice(list("0123456789"), length - 1))
        values.add(str(rng.choice(prefixes)) + str(rng.choice(["", " ", "-"])) + digits)
    # values with text in them are not_a_number by design, whatever phonenumbers makes of them
    values = sorted(v for v in values if not re.search(r"[^\d\s\-+().（）＋０-９]", v))
    out = standardize_phones(pd.Series(values))
    mismatches = [
        (raw, e164, kind, _phonenumbers_verdict(raw))
        for raw, e164, kind in zip(values, out["phone_e164"], out["phone_kind"], strict=True)
        if (e164, kind if e164 else "invalid") != _phonenumbers_verdict(raw)
    ]
    assert len(values) > 5000
    assert out["phone_valid"].sum() > 1500  # the fast path is exercised, not only the slow one
    assert mismatches == []


def test_batch_independent_and_any_index() -> None:
    CASES.assert_batch_independent()


# ----------------------------------------------------------------------------- robustness
_NASTY = [
    "'; DROP TABLE customers; --",
    "1' OR '1'='1",
    "Robert'); DELETE FROM std.phone_lookup;--",
    "\x00\x01\x02",
    "\u202e13812345678",
    "\ufeff13812345678",
    "138\x0012345678",
    "+" * 300,
    "9" * 300,
    "①②③",
    "٠١٢٣٤٥٦٧٨٩",
]
_values = raw_values(
    st.text(alphabet="0123456789+-() .／０１２３４５６７８９＋", max_size=30),
    nasty=_NASTY,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values=st.lists(_values, max_size=20), offset=st.integers(-5, 5))
def test_never_raises_and_invariants(values: list[object], offset: int) -> None:
    raw = pd.Series(values, index=[offset + 3 * i for i in range(len(values))], dtype=object)
    out = standardize_phones(raw)
    assert out.index.equals(raw.index)
    assert list(out.columns) == list(PHONE_COLUMNS)
    for e164, kind, valid, issue in out.itertuples(index=False):
        assert isinstance(valid, (bool, np.bool_))
        if valid:
            assert isinstance(e164, str) and E164.match(e164), e164
            assert kind in {"mobile", "landline", "other"}
        else:
            assert e164 is None
            assert kind in {None, "invalid"}
            assert (kind is None) == (issue is None)


# ----------------------------------------------------------------------------- generated data
def _read_csv(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate_landing(out, 2000, seed=1)
    return out


@pytest.fixture(scope="module")
def person_phones(landing: Path) -> pd.DataFrame:
    """source, source_id, raw phone, canonical mobile of the record's person."""
    frames = []
    for folder, id_col, phone_col in (
        ("crm", "crm_id", "mobile"),
        ("callcenter", "ticket_id", "caller_phone"),
        ("store_pos", "card_no", "phone"),
    ):
        for path in sorted((landing / folder).glob("*.csv")):
            df = _read_csv(path)
            frames.append(pd.DataFrame({"source": folder, "source_id": df[id_col], "phone": df[phone_col]}))
    for path in sorted((landing / "ecommerce").glob("members_*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        frames.append(
            pd.DataFrame(
                {
                    "source": "ecommerce",
                    "source_id": [r["member_id"] for r in rows],
                    "phone": [r.get("phone") or "" for r in rows],
                }
            )
        )
    records = pd.concat(frames, ignore_index=True)
    truth = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    people = pd.read_csv(landing / "_truth" / "people.csv", dtype=str, keep_default_na=False)
    return records.merge(truth, on=["source", "source_id"]).merge(people[["person_id", "mobile"]], on="person_id")


@pytest.fixture(scope="module")
def generated_phones(landing: Path, person_phones: pd.DataFrame) -> list[str]:
    values = set(person_phones["phone"])
    for path in sorted((landing / "contact_events").glob("*.csv")):
        df = _read_csv(path)
        values |= set(df.loc[df["channel"] == "phone", "value"])
    return sorted(v for v in values if v)


def test_accuracy_on_generated_data(person_phones: pd.DataFrame) -> None:
    digits = person_phones["phone"].map(lambda v: re.sub(r"\D", "", unicodedata.normalize("NFKC", v)))
    canon = person_phones["mobile"].str.removeprefix("+86")
    variant = (canon != "") & ((digits == canon) | (digits == "86" + canon) | (digits == "0086" + canon))
    assert variant.sum() > 3000
    distinct = pd.Series(person_phones["phone"].unique())
    std = standardize_phones(distinct).set_axis(distinct)
    got = person_phones.loc[variant, "phone"].map(std["phone_e164"])
    accuracy = (got == person_phones.loc[variant, "mobile"]).mean()
    assert accuracy >= 0.99, accuracy
    # every spelling the generator uses is present, and the rest of the values are decided too
    kinds = person_phones["phone"].map(std["phone_kind"])
    assert set(kinds.dropna()) == {"mobile", "landline", "invalid"}
    assert (kinds == "invalid").mean() < 0.05
