"""Fast checks of the erasure salt, the pseudonyms and the audit table (no pipeline run)."""

from __future__ import annotations

import stat

import pytest

from customer_mdm.audit import AUDIT_TABLE, append, ensure_audit_table
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError
from customer_mdm.privacy import erasure_salt, normalise, pseudonym, salt_file
from customer_mdm.warehouse import connect


def test_salt_is_generated_once_private_and_overridable(duckdb_settings: Settings, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MDM_ERASURE_SALT", raising=False)
    monkeypatch.delenv("MDM_ERASURE_SALT_FILE", raising=False)
    first = erasure_salt(duckdb_settings)
    assert len(first) == 64 and erasure_salt(duckdb_settings) == first
    assert stat.S_IMODE(salt_file(duckdb_settings).stat().st_mode) == 0o600
    assert stat.S_IMODE(salt_file(duckdb_settings).parent.stat().st_mode) == 0o700
    hashed = pseudonym(duckdb_settings, "phone", "138 1234 5678")
    # another installation (another warehouse) with its own salt hashes differently
    other = Settings.from_env(env={}, home=tmp_path / "other", landing=duckdb_settings.landing)
    monkeypatch.setenv("MDM_ERASURE_SALT", "another-installation")
    assert pseudonym(other, "phone", "138 1234 5678") != hashed
    # ... but that salt is refused against the first warehouse: its fingerprint differs
    with pytest.raises(ConfigError, match="does not match"):
        pseudonym(duckdb_settings, "phone", "138 1234 5678")


def test_identifiers_are_normalised_before_hashing(duckdb_settings: Settings) -> None:
    spellings = ["+86 138 1234 5678", "138-1234-5678", "(+86)13812345678", "+8613812345678"]
    assert {normalise("phone", s) for s in spellings} == {"+8613812345678"}
    assert len({pseudonym(duckdb_settings, "phone", s) for s in spellings}) == 1
    assert pseudonym(duckdb_settings, "email", " Li.Hao@QQ.com ") == pseudonym(
        duckdb_settings, "email", "li.hao@qq.com"
    )
    # the kind is part of the hash: a record id never collides with a phone
    assert pseudonym(duckdb_settings, "record", "13812345678") != pseudonym(duckdb_settings, "phone", "13812345678")


def test_audit_rejects_unknown_actions(settings: Settings) -> None:
    with connect(settings) as wh:
        ensure_audit_table(wh)
        with pytest.raises(ValueError, match="unknown audit action"):
            append(wh, [{"changed_at": "2026-11-20", "actor": "x", "action": "edit"}])
        n = append(wh, [{"changed_at": "2026-11-20 10:00:00", "actor": "run_1", "actor_kind": "run", "action": "new"}])
        assert n == 1 and wh.scalar(f"select count(*) from {AUDIT_TABLE}") == 1
        ensure_audit_table(wh)  # idempotent (the trigger is created once on PostgreSQL)


@pytest.mark.postgres
def test_postgres_rejects_update_and_delete_of_the_audit_log(pg_dsn: str, tmp_path) -> None:
    import psycopg

    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path, target="postgres", pg_dsn=pg_dsn)
    with connect(settings) as wh:
        ensure_audit_table(wh)
        append(wh, [{"changed_at": "2026-11-20 10:00:00", "actor": "run_1", "actor_kind": "run", "action": "new"}])
    for sql in (
        "update audit.golden_changes set reason = 'rewritten'",
        "delete from audit.golden_changes",
        "truncate audit.golden_changes",
    ):
        with connect(settings) as wh, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            wh.execute(sql)
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from audit.golden_changes") == 1


def test_forget_golden_ids_pseudonymises_an_erased_persons_ids(settings: Settings, monkeypatch) -> None:
    import psycopg

    from customer_mdm.audit import forget_golden_ids, list_changes

    monkeypatch.delenv("MDM_ERASURE_SALT", raising=False)
    gone, kept = "GAAAAAAAAAAA1", "GBBBBBBBBBBB2"
    rows = [
        {
            "changed_at": "2026-11-20 10:00:00",
            "actor": "run_1",
            "actor_kind": "run",
            "action": "new",
            "golden_id": gone,
            "field": "golden_id",
            "new_value": f'{{"golden_id": "{gone}", "records": 1}}',
        },
        {
            "changed_at": "2026-11-21 10:00:00",
            "actor": "run_2",
            "actor_kind": "run",
            "action": "merge",
            "golden_id": kept,
            "field": "golden_id",
            "old_value": f'{{"golden_id": "{kept}"}}',
            "new_value": f'{{"golden_id": "{gone}", "records": 2}}',
            "reason": f"{kept} merged into the older id {gone}",
        },
        {
            "changed_at": "2026-11-22 10:00:00",
            "actor": "run_3",
            "actor_kind": "run",
            "action": "new",
            "golden_id": kept,
            "field": "golden_id",
            "new_value": f'{{"golden_id": "{kept}", "records": 1}}',
        },
    ]
    with connect(settings) as wh:
        ensure_audit_table(wh)
        append(wh, rows)
        assert forget_golden_ids(settings, wh, [gone]) == 2
        everything = wh.query(f"select * from {AUDIT_TABLE}")
        assert len(everything) == 3 and gone not in repr(everything)
        alias = pseudonym(settings, "golden_id", gone)
        assert sum(alias in repr(r) for r in everything) == 2
        assert wh.scalar(f"select count(*) from {AUDIT_TABLE} where golden_id = ?", [kept]) == 2  # others stay
        assert len(list_changes(settings, wh, golden_id=gone)) == 1  # still found by the operator
        assert forget_golden_ids(settings, wh, [gone]) == 0
    if settings.target == "postgres":  # the exception is only for forget_golden_ids' transaction
        with connect(settings) as wh, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            wh.execute(f"update {AUDIT_TABLE} set golden_id = ? where golden_id = ?", ["G0", kept])


# ----------------------------------------------------------------------------- erasure, check, scrub
def test_quarantine_rows_and_raw_rows_erased_by_normalised_value_and_counted_in_the_manifest(
    settings: Settings,
) -> None:
    """Quarantined rows quoting a formatted phone or an upper-case e-mail are the person's too;
    an erased raw row is counted in its file's manifest entry (the raw gate's row count)."""
    import pandas as pd

    from customer_mdm.privacy import Person, _erase_rows
    from customer_mdm.schema import ensure_schema

    with connect(settings) as wh:
        ensure_schema(wh)
        wh.insert_df(
            "ops.quarantine",
            pd.DataFrame(
                {
                    "run_id": "r1",
                    "feed": "crm",
                    "kind": "row",
                    "raw_record": [
                        '{"mobile": "+86 138-1234 5678"}',
                        '{"email": "LI.HAO@QQ.COM"}',
                        '{"mobile": "１３８１２３４５６７８"}',
                        '{"mobile": "13812345679", "email": "li.hao@qq.com.other"}',
                    ],
                }
            ),
        )
        wh.insert_df(
            "raw.crm",
            pd.DataFrame({"crm_id": ["C000123", "C000124"], "_batch_id": "crm:f.csv:abc", "_row_number": [1, 2]}),
        )
        wh.insert_df(
            "ops.manifest",
            pd.DataFrame({"feed": ["crm"], "batch_id": ["crm:f.csv:abc"], "status": ["ingested"], "rows_loaded": [2]}),
        )
        person = Person(records={"crm:C000123"}, all_phones={"+8613812345678"}, emails={"li.hao@qq.com"})
        with wh.transaction():
            counts = _erase_rows(wh, [person])[0]
        assert counts["ops.quarantine"] == 3 and counts["raw.crm"] == 1
        assert wh.scalar("select count(*) from ops.quarantine") == 1  # another number, another address
        assert wh.query("select rows_loaded, rows_erased from ops.manifest") == [(2, 1)]


def test_privacy_check_finds_normalised_values_in_tables_and_files(settings: Settings) -> None:
    from customer_mdm.privacy_search import check, scrub_files

    with connect(settings) as wh:
        wh.execute("create schema if not exists mdm")
        wh.execute("create table mdm.steward_decisions (note text, decided_by text)")
        wh.execute(
            "insert into mdm.steward_decisions values ('rang (+86) 138 1234 5678', 'a'), ('mail LI.HAO@qq.com', 'b'), "
            "('ticket C0001234 and 913812345678', 'c')"
        )
    reports = settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "worklist.csv").write_text("golden_id,phone\nG1,+86 138-1234-5678\nG2,13900000000\n", encoding="utf-8")
    (reports / "gb.csv").write_bytes("姓名,电话\n王伟,13812345678\n".encode("gb18030"))
    ids = [("mobile", "13812345678"), ("email", "li.hao@qq.com"), ("crm_id", "C000123")]
    hits = check(settings, ids)
    assert hits.places == {
        "mdm.steward_decisions.note": 2,
        "file:reports/worklist.csv": 1,
        "file:reports/gb.csv": 1,
    }
    from customer_mdm.privacy_search import needles, pattern

    changed = scrub_files(settings, pattern(needles(ids)))
    assert changed == {"reports/worklist.csv": 1, "reports/gb.csv": 1}
    assert (reports / "worklist.csv").read_text() == "golden_id,phone\nG1,[erased]\nG2,13900000000\n"
    assert (reports / "gb.csv").read_bytes().decode("gb18030") == "姓名,电话\n王伟,[erased]\n"
    assert set(check(settings, ids).places) == {"mdm.steward_decisions.note"}


def test_region_lookup_keeps_only_combinations_in_use(settings: Settings) -> None:
    """std.region_lookup (keyed by three raw columns) loses the combinations no staging row uses."""
    import pandas as pd

    from customer_mdm.privacy import _Deleter, _erase_std, _temp
    from customer_mdm.standardize.step import lookups

    region = next(lookup for lookup in lookups() if lookup.table == "std.region_lookup")
    with connect(settings) as wh:
        for schema in ("std", "staging"):
            wh.execute(f"create schema if not exists {schema}")
        wh.execute("create table std.region_lookup (province_raw text, city_raw text, district_raw text, x text)")
        wh.execute(
            "insert into std.region_lookup values ('沪', '上海', null, 'kept'), ('苏', '昆山', '玉山镇', 'gone')"
        )
        for table in {t for t in __import__("re").findall(r"staging\.\w+", region.source_sql)}:
            cols = "province_raw text, city_raw text, district_raw text, store_city_raw text, new_value_raw text, field text"
            wh.execute(f"create table {table} ({cols})")
        wh.execute("insert into staging.stg_crm__customers (province_raw, city_raw) values ('沪', '上海')")
        with wh.transaction():
            values = _temp(
                wh, "_erase_raw_values", {"seq": "bigint", "value": "text"}, pd.DataFrame({"seq": [0], "value": ["x"]})
            )
            deleter = _Deleter(wh)
            _erase_std(wh, deleter, values)
        assert wh.query("select x from std.region_lookup") == [("kept",)]
        assert deleter.counts[0]["std.region_lookup"] == 1


def test_scrub_files_literal_prefilter_finds_every_form_and_skips_the_rest(
    duckdb_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The substring test run before the patterns (:func:`privacy_search.literals`) lets through
    every written form the patterns match (formatted, full-width, upper case, with the country
    code), so scrubbing with it changes what scrubbing without it changes, and it spares the
    pattern search of files holding none of the values (what made the erasure step slow)."""
    import re

    from customer_mdm import privacy_search
    from customer_mdm.privacy_search import literals, needles, pattern, scrub_files

    searched: list[int] = []  # lengths of the texts the pattern searched

    class Spy:
        def __init__(self, compiled: re.Pattern[str]) -> None:
            self.compiled = compiled

        def search(self, text: str) -> re.Match[str] | None:
            searched.append(len(text))
            return self.compiled.search(text)

        def __getattr__(self, name: str):  # the rest of re.Pattern
            return getattr(self.compiled, name)

    class SpyRe:
        def __getattr__(self, name: str):
            return getattr(re, name)

        @staticmethod
        def compile(regex: str) -> Spy:
            return Spy(re.compile(regex))

    monkeypatch.setattr(privacy_search, "re", SpyRe())

    ids = [("mobile", "13812345678"), ("email", "li.hao@qq.com"), ("crm_id", "C000123"), ("member_id", "M4567890")]
    regex = pattern(needles(ids))
    lines = [
        "golden_id,phone,note",
        "G1,+86 138-1234-5678,x",
        "G2,(0086)１３８１２３４５６７８,x",
        "G3,LI.HAO@QQ.COM,x",
        "G4,c000123,m4567890",
        "G5,913812345678,li.hao@qq.com.cn",  # not whole tokens: kept
        "G6,13900000000,other",
    ]
    big = "\n".join(f"G{i},1390000{i % 10000:04d},someone{i}@example.com,C{i:07d}" for i in range(20000)) + "\n"
    outcome = []
    for plain in (None, literals(ids)):
        reports = duckdb_settings.home / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (reports / "big.csv").write_text(big, encoding="utf-8")
        changed = scrub_files(duckdb_settings, regex, plain)
        searched.clear()
        assert scrub_files(duckdb_settings, regex, plain) == {}  # nothing left to scrub
        outcome.append((changed, (reports / "people.csv").read_text(), max(searched, default=0)))
    assert outcome[0][:2] == outcome[1][:2]
    assert outcome[1][0] == {"reports/people.csv": 4}
    assert outcome[1][1].splitlines()[5:] == lines[5:]
    # without the substring test the pattern searched big.csv whole; with it, only the short
    # lines holding one of the values (people.csv's kept ones)
    assert outcome[0][2] >= len(big) and 0 < outcome[1][2] < 100
