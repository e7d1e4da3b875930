"""Property-based tests of the landing-file parsers (hypothesis).

Whatever bytes arrive, a reader either rejects the whole file with a reason
(:class:`FileRejected`, the loader quarantines it) or returns a :class:`ParsedFile` in which
every record of the file is accounted for: loaded exactly as written, or rejected with its
record number and a reason. Nothing is dropped silently, nothing is altered on the way in (CSV
injection text and SQL text are data here: they are neutralised on export, not on ingest).
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from customer_mdm.errors import FileRejected
from customer_mdm.ingest.readers import MAX_FIELD_CHARS, ParsedFile, decode, read_file
from customer_mdm.sources import FEEDS

CARDS = next(f for f in FEEDS if f.name == "store_pos")  # CSV, key card_no
MEMBERS = next(f for f in FEEDS if f.name == "ecommerce_members")  # JSON Lines, key member_id
# derandomize: the same examples on every run (CI never fails on a case nobody has seen before)
FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

HOSTILE = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    '=HYPERLINK("http://attacker.example","click")',
    "'; drop table raw.store_pos; --",
    "Robert'); DROP TABLE customers;--",
    "1' OR '1'='1",
    'a "quoted" value, with comma',
    "line one\nline two",
    "carriage\rreturn",
    "\r\n",
    "nul\x00inside",
    "\x00",
    "\ufeffbom at start",
    "\u2028line separator\u2029",
    "tab\tseparated",
    "😀 emoji",
    "王伟 / 張偉",
    "",
    " ",
]
VALUE = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE))
#: fields around the 64 KiB limit (a fixed example: generating and shrinking them is slow)
HUGE = ["x" * (MAX_FIELD_CHARS + 1), "王" * MAX_FIELD_CHARS, "=" * (MAX_FIELD_CHARS + 10), ","]


def _outcome(parsed: ParsedFile) -> tuple[list[dict[str, str | None]], list[int]]:
    loaded = parsed.rows.drop(columns=["_row_number", "_extra"]).astype(object)
    rows = [{k: (None if v is None or v != v else v) for k, v in r.items()} for r in loaded.to_dict("records")]
    return rows, [r.row_number for r in parsed.rejected]


def _expected_reject(values: dict[str, str], key: str | None) -> bool:
    if any("\x00" in v or len(v) > MAX_FIELD_CHARS for v in values.values()):
        return True
    return key is not None and not values[key].strip()


# ----------------------------------------------------------------------------- any bytes
@FAST
@given(data=st.binary(max_size=2000), name=st.sampled_from(["cards_2026-11-20.csv", "members_2026-11-20.jsonl"]))
@example(data=b"\xef\xbb\xbf", name="cards_2026-11-20.csv")
@example(data=b"\x00" * 50, name="members_2026-11-20.jsonl")
@example(data="card_no,name,phone\r\n1,\u738b,2".encode("gb18030") + b"\xff\xfe", name="cards_2026-11-20.csv")
def test_random_bytes_never_raise_anything_but_a_rejection(data: bytes, name: str):
    feed = CARDS if name.endswith(".csv") else MEMBERS
    try:
        parsed = read_file(data, feed, name)
    except FileRejected as exc:
        assert str(exc)
        return
    for rejected in parsed.rejected:
        assert rejected.reason and rejected.row_number >= 1
    for column in feed.columns:
        for value in parsed.rows[column].dropna():
            assert "\x00" not in value and len(value) <= MAX_FIELD_CHARS


@FAST
@given(text=st.text(max_size=300), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_decode_round_trips_every_text_it_accepts(text: str, encoding: str):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        decoded, detected = decode(data)
    except FileRejected:
        assert "\x00" in text or encoding == "gb18030"  # NUL-heavy text, or GB18030 that looks like Latin-1
        return
    if detected != "gb18030":
        assert decoded == text.removeprefix("\ufeff") if encoding == "utf-8-sig" else decoded == text


# ----------------------------------------------------------------------------- CSV files
@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[dict[str, str]], list[bool]]:
    header = draw(st.permutations(list(CARDS.columns)))
    header = [draw(st.sampled_from([h, h.upper(), f" {h} "])) for h in header]
    records = draw(st.lists(st.fixed_dictionaries({c: VALUE for c in CARDS.columns}), max_size=8))
    broken = [draw(st.integers(0, 9)) == 0 for _ in records]  # some rows lose or gain a field
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")  # quotes fields holding \r or \n
    writer.writerow(header)
    for record, cut in zip(records, broken, strict=True):
        row = [record[h.strip().lower()] for h in header]
        writer.writerow(row[:-1] if cut else row)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
    try:
        data = out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        data = out.getvalue().encode("utf-8")
    return data, records, broken


@FAST
@given(csv_files())
def test_every_csv_record_is_loaded_as_written_or_rejected_with_a_reason(
    case: tuple[bytes, list[dict[str, str]], list[bool]],
):
    data, records, broken = case
    try:
        parsed = read_file(data, CARDS, "cards_2026-11-20.csv")
    except FileRejected as exc:  # the whole file is quarantined with its reason
        assert str(exc)
        return
    loaded, rejected = _outcome(parsed)
    blank = [all(v == "" for v in r.values()) and len(CARDS.columns) == 1 for r in records]
    expected_loaded = [
        r
        for r, cut, b in zip(records, broken, blank, strict=True)
        if not cut and not b and not _expected_reject(r, "card_no")
    ]
    assert loaded == [dict(r) for r in expected_loaded]
    assert len(loaded) + len(set(rejected)) == len(records)
    assert all(r.reason for r in parsed.rejected)
    loaded_numbers = parsed.rows["_row_number"].tolist()
    assert not set(loaded_numbers) & set(rejected), "a record both loaded and rejected"


# ----------------------------------------------------------------------------- JSON Lines files
JSON_VALUE = st.one_of(
    VALUE,
    st.none(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    lines: list[object] = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries({c: JSON_VALUE for c in MEMBERS.columns}),
                st.sampled_from(["{broken json", "[1, 2]", "42", '"text"', '{"member_id": "a"']),
            ),
            max_size=8,
        )
    )
    text = "\n".join(
        item if isinstance(item, str) else json.dumps(item, ensure_ascii=draw(st.booleans())) for item in lines
    )
    return text.encode("utf-8"), lines


@FAST
@given(jsonl_files())
@example((json.dumps({"member_id": "M1", "nickname": "a\u2028b"}, ensure_ascii=False).encode(), [{"member_id": "M1"}]))
def test_every_json_line_is_loaded_or_rejected_with_a_reason(case: tuple[bytes, list[object]]):
    data, lines = case
    try:
        parsed = read_file(data, MEMBERS, "members_2026-11-20.jsonl")
    except FileRejected as exc:
        assert any(why in str(exc) for why in ("no line is valid JSON", "only whitespace", "NUL", "empty file"))
        return
    loaded, rejected = _outcome(parsed)
    assert len(loaded) + len(rejected) == len(lines)
    assert len(set(rejected)) == len(rejected)
    assert all(r.reason for r in parsed.rejected)
    assert all(isinstance(v, str) or v is None for row in loaded for v in row.values())


def test_nul_inside_a_multiline_csv_field_rejects_that_record_only():
    data = b'card_no,name,phone\r\nC1,"two\r\nli\x00nes",1\r\nC2,ok,2\r\n'
    parsed = read_file(data, CARDS, "cards_2026-11-20.csv")
    loaded, rejected = _outcome(parsed)
    assert [r["card_no"] for r in loaded] == ["C2"]
    assert rejected == [1] and "NUL" in parsed.rejected[0].reason


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x0b", "\x0c"])
def test_unicode_line_separators_inside_json_strings_do_not_split_records(separator: str):
    line = json.dumps({"member_id": "M1", "nickname": f"a{separator}b"}, ensure_ascii=False)
    parsed = read_file(f"{line}\n".encode(), MEMBERS, "members_2026-11-20.jsonl")
    assert parsed.rows["nickname"].tolist() == [f"a{separator}b"] and not parsed.rejected


def test_huge_fields_reject_their_record_only():
    rows = [["C1", HUGE[0], "1"], ["C2", HUGE[1], "2"], ["C3", HUGE[2], "3"], ["C4", HUGE[3], "4"]]
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["card_no", "name", "phone"], *rows])
    parsed = read_file(out.getvalue().encode(), CARDS, "cards_2026-11-20.csv")
    loaded, rejected = _outcome(parsed)
    assert [(r["card_no"], r["name"]) for r in loaded] == [("C2", HUGE[1]), ("C4", ",")]
    assert rejected == [1, 3] and all("over the 65536 limit" in r.reason for r in parsed.rejected)
