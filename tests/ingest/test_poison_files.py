"""Files that must never block a feed or leak what lies outside the landing zone.

Symbolic links (to a file or a folder) are recorded, never followed; a Parquet column of
``list<date>``/decimal/binary, JSON nested about 1000 levels deep, a file over
``MDM_MAX_FILE_MB`` and any unexpected parser failure become a recorded quarantine while the rest
of the run goes on. Both warehouses.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer_mdm.config import Settings
from customer_mdm.ingest import ingest_all, ingest_feed, readers
from customer_mdm.ingest.loader import FeedIngestor
from customer_mdm.schema import ensure_feed_table, ensure_schema
from customer_mdm.sources import feed
from customer_mdm.warehouse import connect

OUTSIDE = "OUTSIDE-THE-LANDING-ZONE-4711"
CRM = "crm_id,name,mobile,email,updated_at\nC1,王伟,13812345678,a@qq.com,2026-11-20 13:05:00\n"


def _write(settings: Settings, rel: str, content: bytes) -> Path:
    path = settings.landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _quarantine(settings: Settings) -> dict[str, tuple]:
    with connect(settings) as wh:
        rows = wh.query("select source_file, reason, raw_record, kept_at from ops.quarantine where kind = 'file'")
    return {r[0]: r[1:] for r in rows}


def _everything_recorded(settings: Settings) -> str:
    with connect(settings) as wh:
        rows = wh.query("select * from ops.quarantine") + wh.query("select * from ops.manifest")
        rows += wh.query("select * from raw.crm")
    return repr(rows)


def test_symlinks_to_files_and_folders_are_recorded_never_followed(settings: Settings, tmp_path: Path):
    secret = tmp_path / "outside" / "salt.csv"
    secret.parent.mkdir()
    secret.write_text(f"crm_id,name\n{OUTSIDE},x\n")
    _write(settings, "crm/crm_2026-11-20.csv", CRM.encode())
    (settings.landing / "crm" / "crm_2026-11-21.csv").symlink_to(secret)  # matches the feed
    (settings.landing / "crm" / "notes.txt").symlink_to(secret)  # matches no feed
    (settings.landing / "store_pos").symlink_to(secret.parent, target_is_directory=True)  # a linked folder
    (secret.parent / "cards_2026-11-20.csv").write_text(f"card_no,name\n{OUTSIDE},x\n")

    results = {r.feed: r for r in ingest_all(settings, "run-1")}
    assert results["crm"].count("ingested") == 1 and results["crm"].count("quarantined") == 2
    assert results["store_pos"].count("quarantined") == 1 and results["store_pos"].rows_loaded == 0
    quarantined = _quarantine(settings)
    for rel in ("crm/crm_2026-11-21.csv", "crm/notes.txt", "store_pos/"):
        reason, raw, kept = quarantined[rel]
        assert "symbolic link" in reason and raw is None and kept is None
    recorded = _everything_recorded(settings)
    assert OUTSIDE not in recorded and str(secret.parent) not in recorded
    qdir = settings.quarantine_dir
    assert not qdir.exists() or all(OUTSIDE not in p.read_text() for p in qdir.rglob("*") if p.is_file())
    # recorded once: the next run skips the links
    again = {r.feed: r for r in ingest_all(settings, "run-2")}
    assert all(r.count("quarantined") == 0 for r in again.values())


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(duckdb_settings: Settings, tmp_path: Path):
    settings = duckdb_settings
    secret = tmp_path / "secret.csv"
    secret.write_text(f"crm_id,name\n{OUTSIDE},x\n")
    path = _write(settings, "crm/crm_2026-11-20.csv", CRM.encode())
    with connect(settings) as wh:
        ensure_schema(wh)
        ensure_feed_table(wh, feed("crm"))
        ingestor = FeedIngestor(settings, wh, feed("crm"), "run-1")
        path.unlink()
        path.symlink_to(secret)
        with pytest.raises(OSError):  # O_NOFOLLOW: the read itself refuses the link
            ingestor._read(path)
        assert ingestor.ingest_file(path).status == "quarantined"
    assert OUTSIDE not in _everything_recorded(settings)


def _orders_parquet(amount: pa.Array) -> bytes:
    columns = {
        "order_id": pa.array(["O1", "O2"]),
        "member_id": pa.array(["M1", "M2"]),
        "order_ts": pa.array(["2026-11-20T10:00:00+08:00"] * 2),
        "amount_cny": amount,
        "status": pa.array(["paid", "paid"]),
    }
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "amount",
    [
        pa.array([[dt.date(2026, 1, 1)], None]),
        pa.array([[Decimal("1.50")], [Decimal("2")]]),
        pa.array([[b"\xff\xfe"], []]),
        pa.array([{"when": dt.date(2026, 1, 1), "what": Decimal("3.1")}, None]),
        pa.array([Decimal("1.50"), None]),
        pa.array([b"\xff", b"12"]),
    ],
    ids=["list_date", "list_decimal", "list_binary", "struct_date_decimal", "decimal", "binary"],
)
def test_nested_parquet_types_load_as_text(amount: pa.Array):
    parsed = readers.read_file(_orders_parquet(amount), feed("ecommerce_orders"), "orders_1.parquet")
    assert len(parsed.rows) + len(parsed.rejected) == 2
    assert len(parsed.rows) == 2


@pytest.mark.parametrize("depth", [990, 1000, 1020, 5000])
def test_deeply_nested_json_rejects_its_line_only(depth: int):
    deep = '{"member_id":"M2","x":' + "[" * depth + "]" * depth + "}"
    data = f'{{"member_id":"M1"}}\n{deep}\n'.encode()
    parsed = readers.read_file(data, feed("ecommerce_members"), "members_1.jsonl")
    # loaded as text when the stack allows it, else that line alone is rejected: never an exception
    assert parsed.rows["member_id"].iloc[0] == "M1"
    assert len(parsed.rows) + len(parsed.rejected) == 2
    assert all(r.row_number == 2 for r in parsed.rejected)


def test_poison_files_are_recorded_and_the_run_goes_on(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    _write(settings, "ecommerce/orders_2026-11-20.parquet", _orders_parquet(pa.array([[dt.date(2026, 1, 1)], None])))
    deep = '{"member_id":"M2","x":' + "[" * 1000 + "]" * 1000 + "}"
    _write(settings, "ecommerce/members_1.jsonl", f'{{"member_id":"M1"}}\n{deep}\n'.encode())
    _write(settings, "crm/crm_2026-11-19.csv", CRM.encode())
    _write(settings, "crm/crm_2026-11-20.csv", CRM.replace("C1", "C2").encode())
    original = readers.read_csv

    def explode_on_one_file(data: bytes, target: object) -> object:
        if b"C2" in data:
            raise RuntimeError(f"a parser bug quoting {OUTSIDE}")
        return original(data, target)  # type: ignore[arg-type]

    monkeypatch.setitem(readers.READERS, "csv", explode_on_one_file)
    results = {r.feed: r for r in ingest_all(settings, "run-1")}
    assert results["ecommerce_orders"].rows_loaded == 2
    assert (results["ecommerce_members"].rows_loaded, results["ecommerce_members"].rows_quarantined) == (1, 1)
    crm = results["crm"]
    assert (crm.count("ingested"), crm.count("quarantined")) == (1, 1)
    reason, _, kept = _quarantine(settings)["crm/crm_2026-11-20.csv"]
    assert "RuntimeError" in reason and OUTSIDE not in reason and Path(kept).exists()
    # recorded: the next run does not fail on it or try it again
    assert ingest_feed(settings, "crm", "run-2").count("skipped") == 2


def test_a_file_over_the_size_limit_is_quarantined_unread(settings: Settings, tmp_path: Path):
    limited = Settings.from_env(
        env={"MDM_MAX_FILE_MB": "0.001"},  # about 1 KB
        home=settings.home,
        landing=settings.landing,
        target=settings.target,
        pg_dsn=settings.pg_dsn,
    )
    assert limited.max_file_mb == 0.001
    big = CRM + "".join(f"C{i},王伟,13812345678,a@qq.com,2026-11-20 13:05:00\n" for i in range(2, 60))
    _write(limited, "crm/crm_2026-11-20.csv", big.encode())
    _write(limited, "crm/crm_2026-11-21.csv", CRM.replace("C1", "C9").encode())
    with connect(limited) as wh:
        ensure_schema(wh)
    result = ingest_feed(limited, "crm", "run-1")
    assert (result.count("ingested"), result.count("quarantined")) == (1, 1)
    reason, raw, kept = _quarantine(limited)["crm/crm_2026-11-20.csv"]
    assert "MDM_MAX_FILE_MB" in reason and raw is None and kept is None
    assert ingest_feed(limited, "crm", "run-2").count("skipped") == 2  # recorded once
    # with the default limit the same file loads
    default = Settings.from_env(
        env={}, home=settings.home, landing=settings.landing, target=settings.target, pg_dsn=settings.pg_dsn
    )
    assert default.max_file_mb == 2048
    assert ingest_feed(default, "crm", "run-3").count("ingested") == 1
