"""Parsing of every landing format and every bad-file case of the contract."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer_mdm.errors import FileRejected
from customer_mdm.ingest.readers import MAX_FIELD_CHARS, decode, read_file
from customer_mdm.sources import feed

CRM = feed("crm")
MEMBERS = feed("ecommerce_members")
ORDERS = feed("ecommerce_orders")
CONTACT = feed("contact_events")

CRM_HEADER = "crm_id,name,gender,birth_date,mobile,email,province,city,district,address,company,customer_type,tier,consent_marketing,created_at,updated_at"
CRM_ROW = 'C000123,王伟,男,1990/3/7,+86 138 1234 5678, Wang@QQ.con ,上海,上海市,闵行区,"莘庄镇 1号, 2室",上海某某有限公司,个人,VIP,是,2026-11-20 13:05:00,2026-11-20 13:05:00'


def crm_csv(*rows: str, header: str = CRM_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_csv_utf8_parses_every_column_as_text():
    parsed = read_file(crm_csv(CRM_ROW).encode(), CRM, "crm_2026-11-20.csv")
    assert parsed.encoding == "utf-8"
    row = parsed.rows.iloc[0]
    assert row["crm_id"] == "C000123"
    assert row["address"] == "莘庄镇 1号, 2室"
    assert row["email"] == " Wang@QQ.con "  # raw keeps values exactly; staging cleans
    assert row["_row_number"] == 1
    assert not parsed.rejected


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (lambda t: t.encode("utf-8-sig"), "utf-8-sig"),
        (lambda t: t.encode("gb18030"), "gb18030"),
    ],
)
def test_csv_encodings_detected(encoded, encoding):
    text = crm_csv(CRM_ROW, CRM_ROW.replace("C000123", "C000124").replace("王伟", "陳靜"))
    parsed = read_file(encoded(text), CRM, "crm.csv")
    assert parsed.encoding == encoding
    assert list(parsed.rows["name"]) == ["王伟", "陳靜"]
    assert list(parsed.rows.columns[:2]) == ["crm_id", "name"]


def test_gb18030_with_much_text_still_accepted():
    rows = [CRM_ROW.replace("C000123", f"C{i:06d}") for i in range(200)]
    parsed = read_file(crm_csv(*rows).encode("gb18030"), CRM, "crm.csv")
    assert len(parsed.rows) == 200


def test_column_order_is_free_and_extra_columns_kept():
    header = "updated_at,email,mobile,name,crm_id,loyalty_note"
    parsed = read_file(
        crm_csv("2026-11-20 13:05:00,a@qq.com,13812345678,李娜,C1,likes tea", header=header).encode(), CRM, "crm.csv"
    )
    row = parsed.rows.iloc[0]
    assert (row["crm_id"], row["name"], row["mobile"]) == ("C1", "李娜", "13812345678")
    assert json.loads(row["_extra"]) == {"loyalty_note": "likes tea"}
    assert row["gender"] is None
    assert any("optional column gender missing" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"   \n\n", "only whitespace"),
        ("crm_id,name\nC1,王伟\n".encode(), "missing required column(s): mobile, email, updated_at"),
        (b"crm_id,crm_id,name,mobile,email,updated_at\n", "duplicate column"),
        ("王伟,上海".encode("utf-16"), "UTF-16"),
        (b"\x00\x01\x02\x03" * 100, "NUL bytes"),
        (b"crm_id,name\n\xff\xfe\xfa\xfb\xfc", "neither UTF-8 nor GB18030"),
    ],
)
def test_bad_csv_files_rejected_with_reason(data, reason):
    with pytest.raises(FileRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_file(data, CRM, "crm.csv")


def test_a_file_without_header_is_rejected_without_quoting_its_first_row():
    # the first row of a header-less export is a person's: the reason (stored in ops.quarantine and
    # ops.manifest, logged) describes the header instead of quoting it
    row_dup = CRM_ROW.replace("上海市", "上海")  # two equal values in the "header"
    for data in (crm_csv(CRM_ROW, header=CRM_ROW), crm_csv(CRM_ROW, header=row_dup)):
        with pytest.raises(FileRejected) as info:
            read_file(data.encode(), CRM, "crm.csv")
        reason = str(info.value)
        assert "header has 16 column(s)" in reason or "duplicate column(s) in header: 1 name(s)" in reason
        for value in ("C000123", "王伟", "138 1234 5678", "wang@qq", "Wang@QQ", "上海", "莘庄"):
            assert value not in reason


def test_latin1_export_is_not_mistaken_for_gb18030():
    # Windows-1252 bytes that happen to be valid GB18030 decode into rare GBK characters
    words = "Müller Gößmann Françoise Élodie Søren Björk".split()
    body = "\n".join(f"C{i},{w}{w},{i}13800000000,x@y.com,2026-11-20" for i, w in enumerate(words * 20))
    data = ("crm_id,name,mobile,email,updated_at\n" + body).encode("cp1252")
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        pytest.skip("this sample is not valid GB18030, so it is rejected by the strict decoder anyway")
    with pytest.raises(FileRejected, match="does not look like GB18030"):
        read_file(data, CRM, "crm.csv")


def test_truncated_csv_last_row_quarantined_rest_loaded():
    text = crm_csv(CRM_ROW, CRM_ROW.replace("C000123", "C000124"))
    truncated = text[: len(text) - 60]  # cut in the middle of the last row
    parsed = read_file(truncated.encode(), CRM, "crm.csv")
    assert list(parsed.rows["crm_id"]) == ["C000123"]
    assert len(parsed.rejected) == 1
    assert parsed.rejected[0].row_number == 2
    assert "malformed CSV" in parsed.rejected[0].reason or "header has 16" in parsed.rejected[0].reason
    assert parsed.rejected[0].raw.startswith("C000124,")


def test_unterminated_quote_at_end_is_quarantined():
    text = crm_csv(CRM_ROW) + 'C9,"王伟,男'
    parsed = read_file(text.encode(), CRM, "crm.csv")
    assert len(parsed.rows) == 1
    assert len(parsed.rejected) == 1
    assert "malformed CSV" in parsed.rejected[0].reason


def test_bad_rows_quarantined_good_rows_kept():
    rows = [
        CRM_ROW,
        CRM_ROW.replace("C000123", ""),  # empty id
        CRM_ROW.replace("王伟", "王" * (MAX_FIELD_CHARS + 1)).replace("C000123", "C2"),
        CRM_ROW.replace("C000123", "C3") + ",surplus",
        "",  # blank line: not a record
        CRM_ROW.replace("C000123", "C4"),
    ]
    parsed = read_file(crm_csv(*rows).encode(), CRM, "crm.csv")
    assert list(parsed.rows["crm_id"]) == ["C000123", "C4"]
    reasons = [r.reason for r in parsed.rejected]
    assert any("empty crm_id" in r for r in reasons)
    assert any("over the 65536 limit" in r for r in reasons)
    assert any("17 fields" in r for r in reasons)
    assert all(r.raw for r in parsed.rejected)


def test_nul_in_one_line_rejects_only_that_line():
    text = crm_csv(
        CRM_ROW, CRM_ROW.replace("C000123", "C2").replace("王伟", "王\x00伟"), CRM_ROW.replace("C000123", "C3")
    )
    parsed = read_file(text.encode(), CRM, "crm.csv")
    assert list(parsed.rows["crm_id"]) == ["C000123", "C3"]
    assert "NUL" in parsed.rejected[0].reason


def test_jsonl_members_values_as_text_and_bad_lines_quarantined():
    lines = [
        {
            "member_id": "M1",
            "nickname": "wangwei88",
            "phone": "13812345678",
            "last_login_at": 1763600000000,
            "registered_at": "2026-01-02T03:04:05+08:00",
            "vip": True,
            "tags": ["a"],
        },
        "{not json",
        [1, 2],
        {"nickname": "no id"},
        {"member_id": "", "nickname": "empty id"},
        {"member_id": "M2", "real_name": None},
    ]
    data = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines).encode()
    parsed = read_file(data, MEMBERS, "members_20261120T0300.jsonl")
    assert list(parsed.rows["member_id"]) == ["M1", "M2"]
    m1 = parsed.rows.iloc[0]
    assert m1["last_login_at"] == "1763600000000"
    assert json.loads(m1["_extra"]) == {"tags": '["a"]', "vip": "true"}
    assert parsed.rows.iloc[1]["real_name"] is None
    assert [r.row_number for r in parsed.rejected] == [2, 3, 4, 5]
    reasons = " | ".join(r.reason for r in parsed.rejected)
    assert "invalid JSON" in reasons and "not an object" in reasons
    assert "missing required field(s): member_id" in reasons and "empty member_id" in reasons


def test_jsonl_that_is_not_jsonl_rejected():
    with pytest.raises(FileRejected, match="not a JSON Lines file"):
        read_file(b"member_id,phone\nM1,138\n", MEMBERS, "members_1.jsonl")


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_parquet_orders_typed_values_become_text():
    table = pa.table(
        {
            "order_id": ["O1", "O2"],
            "member_id": ["M1", "M1"],
            "order_ts": pa.array([1763600000000, 1763600001000], pa.timestamp("ms", tz="UTC")),
            "amount_cny": pa.array([199.5, -20.0]),
            "status": ["paid", "refunded"],
        }
    )
    parsed = read_file(_parquet_bytes(table), ORDERS, "orders_2026-11-20.parquet")
    assert list(parsed.rows["amount_cny"]) == ["199.5", "-20.0"]
    assert parsed.rows.iloc[0]["order_ts"].startswith("2025-11-20T00:53:20")


def test_truncated_parquet_rejected():
    data = _parquet_bytes(
        pa.table({"order_id": ["O1"], "member_id": ["M1"], "order_ts": ["x"], "amount_cny": ["1"], "status": ["paid"]})
    )
    with pytest.raises(FileRejected, match="unreadable Parquet"):
        read_file(data[: len(data) // 2], ORDERS, "orders_1.parquet")


def test_parquet_missing_required_column_rejected():
    data = _parquet_bytes(pa.table({"order_id": ["O1"], "member_id": ["M1"]}))
    with pytest.raises(FileRejected, match="missing required column"):
        read_file(data, ORDERS, "orders_1.parquet")


def test_feed_without_id_accepts_rows():
    parsed = read_file(
        b"channel,value,event,occurred_at\nemail,a@qq.com,bounced,2026-11-20 10:00:00\n", CONTACT, "events.csv"
    )
    assert len(parsed.rows) == 1


def test_decode_prefers_utf8():
    assert decode("王伟".encode()) == ("王伟", "utf-8")
