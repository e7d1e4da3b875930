"""Match-on-entry on PostgreSQL: the serving tables build there (``serving.*`` read live) and the
matcher answers exactly as on DuckDB for the same landing zone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from customer_mdm.config import Settings
from customer_mdm.hub import serving
from customer_mdm.hub.matching import Matcher
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PEOPLE = 150
FIELDS = {
    "name": "name_raw",
    "mobile": "phone_raw",
    "email": "email_raw",
    "city": "city_raw",
    "birth_date": "birth_date_raw",
}


@pytest.fixture(scope="module")
def both(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Settings]]:
    base = tmp_path_factory.mktemp("match_pg")
    landing = base / "landing"
    generate_landing(landing, PEOPLE, seed=43, days=1)
    duck = Settings.from_env(env={}, home=base / "duck", landing=landing)
    server = request.getfixturevalue("pg_server")
    db_name = f"t_match_{base.name[-12:].replace('-', '_')}"
    pg = Settings.from_env(
        env={}, home=base / "pg", landing=landing, target="postgres", pg_dsn=server.create_database(db_name)
    )
    for s in (duck, pg):
        if s is pg:
            # golden ids are an HMAC under the warehouse's salt: the same salt, the same golden ids
            (pg.home / "secrets").mkdir(parents=True, mode=0o700, exist_ok=True)
            shutil.copy2(duck.home / "secrets" / "erasure_salt", pg.home / "secrets" / "erasure_salt")
        run_inline(s, governance=False)
        serving.refresh(s, "match-pg")
    yield duck, pg
    server.drop_database(db_name)


def _payloads(settings: Settings) -> list[dict[str, str]]:
    with connect(settings) as wh:
        rows = wh.query_df(
            "select name_raw, phone_raw, email_raw, city_raw, birth_date_raw from intermediate.int_customer_records "
            "order by source, source_id"
        )
    out = []
    for _, row in rows.iloc[::12].iterrows():
        p = {f: row[c] for f, c in FIELDS.items() if isinstance(row[c], str) and row[c].strip()}
        if any(k in p for k in ("name", "mobile", "email")):
            out.append(p)
    return out


def test_matcher_answers_the_same_on_postgres(both: tuple[Settings, Settings]):
    duck, pg = both
    m_duck, m_pg = Matcher(serving.ServingReader(duck)), Matcher(serving.ServingReader(pg))
    assert m_pg.index.n_records == m_duck.index.n_records > 0
    assert m_pg.index.stats == m_duck.index.stats
    payloads = _payloads(duck)
    assert len(payloads) >= 15
    found = 0
    for p in payloads:
        a, b = m_duck.match(p), m_pg.match(p)
        assert a["decision"] == b["decision"]
        assert [c["golden_id"] for c in a["candidates"]] == [c["golden_id"] for c in b["candidates"]]
        for x, y in zip(a["candidates"], b["candidates"], strict=True):
            assert x["match_weight"] == pytest.approx(y["match_weight"], abs=1e-6)
        found += a["decision"] == "match"
    assert found >= len(payloads) * 0.8
