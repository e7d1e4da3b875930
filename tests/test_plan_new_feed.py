"""A feed of one's own needs one plan entry and one staging model, and nothing else.

A made-up eighth feed (``partner``: contacts a partner firm shares) is declared with one
:class:`~customer_mdm.plan.Feed` (registered at run time, as a deployment adds its own) and one
staging model with its source declaration, written into a copy of the dbt project. The daily
run, inline, takes it from the landing zone to the golden tables: ingested into ``raw.partner``,
staged, its phones and names standardised, unioned into the person records, linked to the CRM
people it shares contacts with, and published in ``marts.customer_xref``.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.pipeline import run_inline
from customer_mdm.plan import Feed, Person
from customer_mdm.sources import register_feed
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PARTNER = Feed(
    name="partner",
    folder="partner",
    patterns=("*.csv",),
    columns=("contact_id", "full_name", "mobile", "mail", "city", "updated_at"),
    required=("contact_id", "full_name"),
    key="contact_id",
    description="Contacts a partner firm shares (made up for this test)",
    staging_model="stg_partner__contacts",
    person=Person(
        source="partner",
        columns={
            "name_raw": "name_raw",
            "phone_raw": "phone_raw",
            "email_raw": "email_raw",
            "city_raw": "city_raw",
            "record_created_at_utc": "updated_at_utc",
            "record_updated_at_utc": "updated_at_utc",
            "source_timezone": "'Asia/Shanghai'",
        },
    ),
)

STAGING_MODEL = """
{{ config(unique_key='source_id') }}

with

source as (

    {{ changed_keys_source(source('partner', 'partner'), clean_text('contact_id')) }}

),

renamed as (

    select
        {{ clean_text('contact_id') }} as contact_id,
        {{ clean_text('full_name') }} as name_raw,
        {{ clean_text('mobile') }} as phone_raw,
        {{ clean_text('mail') }} as email_raw,
        {{ clean_text('city') }} as city_raw,
        {{ safe_cast_local_timestamp(clean_text('updated_at')) }} as updated_at_local,
        _source_file, _batch_id, _row_number, _ingested_at
    from source

),

versioned as (

    select
        *,
        {{ local_to_utc('updated_at_local') }} as updated_at_utc,
        row_number() over (
            partition by contact_id
            order by updated_at_local desc nulls last, _ingested_at desc, _batch_id desc, _row_number desc
        ) as version_rank
    from renamed

),

final as (

    select
        {{ row_key(["'partner'", '_batch_id', '_row_number']) }} as record_key,
        'partner' as source,
        contact_id as source_id,
        name_raw, phone_raw, email_raw, city_raw, updated_at_utc,
        (version_rank = 1) as is_latest,
        _source_file, _batch_id, _row_number, _ingested_at
    from versioned

)

select * from final
"""

SOURCE_YAML = """
version: 2
sources:
  - name: partner
    schema: raw
    tables:
      - name: partner
"""

#: partner contacts copied from CRM people (the same name, mobile and e-mail) and new people
COPIED, NEW = 24, 6


@pytest.fixture
def partner_feed() -> Iterator[Feed]:
    register_feed(PARTNER)
    try:
        yield PARTNER
    finally:
        plan.FEEDS.remove(PARTNER)


def _project_with_partner_model(root: Path) -> Path:
    """A copy of the project whose dbt project has the partner staging model (and its source)."""
    here = Settings.from_env(env={}).project_root
    shutil.copytree(
        here / "dbt_project",
        root / "dbt_project",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    (root / "expectations").symlink_to(here / "expectations")
    staging = root / "dbt_project" / "models" / "staging"
    (staging / "stg_partner__contacts.sql").write_text(STAGING_MODEL, encoding="utf-8")
    (staging / "_partner__sources.yml").write_text(SOURCE_YAML, encoding="utf-8")
    return root


def _crm_people(landing: Path) -> list[dict[str, str]]:
    """Distinct CRM records with a name, a mobile and an e-mail, from the UTF-8 CRM exports."""
    people: dict[str, dict[str, str]] = {}
    for path in sorted((landing / "crm").glob("*.csv")):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            continue  # the legacy GB18030 export
        for row in csv.DictReader(text.splitlines()):
            if row.get("name") and row.get("mobile") and row.get("email") and row["crm_id"] not in people:
                people[row["crm_id"]] = row
    return list(people.values())


def test_an_eighth_feed_runs_from_landing_to_golden(tmp_path: Path, partner_feed: Feed) -> None:
    root = _project_with_partner_model(tmp_path / "project")
    settings = Settings.from_env(
        env={}, home=tmp_path / "home", landing=tmp_path / "landing", target="duckdb", project_root=root
    )
    generate_landing(settings.landing, 150, seed=5, days=1)
    crm = _crm_people(settings.landing)[:COPIED]
    assert len(crm) == COPIED
    rows = [
        {
            "contact_id": f"P{i:03d}",
            "full_name": p["name"],
            "mobile": p["mobile"],
            "mail": p["email"],
            "city": p.get("city", ""),
            "updated_at": "2026-11-17 10:00:00",
        }
        for i, p in enumerate(crm)
    ]
    rows += [
        {
            "contact_id": f"N{i:03d}",
            "full_name": name,
            "mobile": f"1390000{i:04d}",
            "mail": f"new{i}@partner.example",
            "city": "杭州",
            "updated_at": "2026-11-17 11:00:00",
        }
        for i, name in enumerate(("欧阳澈", "司马瑶", "上官虹", "诸葛朗", "东方晴", "慕容川"))
    ]
    assert len(rows) == COPIED + NEW
    (settings.landing / "partner").mkdir()
    with open(settings.landing / "partner" / "contacts_20261118.csv", "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(PARTNER.columns))
        writer.writeheader()
        writer.writerows(rows)

    summary = run_inline(settings, governance=False)

    assert summary["status"] == "success", summary.get("missing_steps")
    assert summary["steps"]["ingest_partner"]["status"] == "success"
    assert summary["feeds"]["partner"]["rows_loaded"] == len(rows)
    copied_of = {f"P{i:03d}": p["crm_id"].strip() for i, p in enumerate(crm)}
    with connect(settings, read_only=True) as wh:
        assert wh.scalar("select count(*) from raw.partner") <= len(rows)  # less what an erasure took
        staged = wh.scalar("select count(*) from staging.stg_partner__contacts where is_latest")
        assert staged >= len(rows) - 3, "only a generated erasure request may remove a partner contact"
        records = wh.query(
            "select source_id, name_std, phone_e164 from intermediate.int_customer_records where source = 'partner'"
        )
        assert len(records) == staged, "every current partner contact is a person record"
        assert all(name and phone for _, name, phone in records), "names and phones were standardised"
        golden = dict(
            wh.query(
                "select source || ':' || source_id, golden_id from marts.customer_xref where golden_id is not null"
            )
        )
    partner_ids = {f"partner:{sid}" for sid, _, _ in records}
    assert partner_ids <= set(golden), "every partner contact is linked and published"
    pairs = [(golden[f"partner:{p}"], golden.get(f"crm:{c}")) for p, c in copied_of.items() if f"partner:{p}" in golden]
    both = [(p, c) for p, c in pairs if c is not None]
    assert len(both) >= COPIED - 3
    same = sum(p == c for p, c in both)
    assert same >= 0.9 * len(both), f"{same} of {len(both)} copied contacts joined their CRM person"
    new = {golden[f"partner:N{i:03d}"] for i in range(NEW) if f"partner:N{i:03d}" in golden}
    assert len(new) == NEW, "six new people, six golden customers"
