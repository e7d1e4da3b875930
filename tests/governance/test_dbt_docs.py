"""dbt as the catalogue: after a publication the docs site is generated into $MDM_HOME/dbt/docs, its
manifest holds the exposures, and dbt's graph runs from every landing table to the BI views."""

from __future__ import annotations

import json
from collections import deque

from governance_build import Built

from customer_mdm.pipeline import dbt_docs_step
from customer_mdm.security import BI_VIEWS
from customer_mdm.sources import FEEDS


def downstream(child_map: dict[str, list[str]], start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for child in child_map.get(queue.popleft(), []):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return seen


def test_docs_site_after_publication_reaches_the_bi_views(gov: Built):
    details = dbt_docs_step(gov.settings, "docs_check")  # the run that published (mdm_governance's task)
    site = gov.settings.dbt_docs_dir
    assert details["site"] == str(site / "index.html")
    assert {p.name for p in site.iterdir()} == {"index.html", "manifest.json", "catalog.json"}
    manifest = json.loads((site / "manifest.json").read_text())
    catalog = json.loads((site / "catalog.json").read_text())

    exposures = manifest["exposures"]
    assert {e.split(".")[-1] for e in exposures} == {"bi_views", "hub_api", "marketing_audience"}
    assert exposures["exposure.customer_mdm.hub_api"]["type"] == "application"
    # from each landing feed's raw table, through staging, intermediate and golden_build, to the BI views
    for feed in FEEDS:
        source_id = next(k for k, s in manifest["sources"].items() if f"{s['schema']}.{s['name']}" == feed.raw_table)
        reached = downstream(manifest["child_map"], source_id)
        if feed.name in ("crm", "ecommerce_members", "callcenter", "store_pos"):
            assert "model.customer_mdm.dim_customer" in reached, feed.name
            assert "exposure.customer_mdm.bi_views" in reached and "exposure.customer_mdm.hub_api" in reached
    bi_views = manifest["exposures"]["exposure.customer_mdm.bi_views"]["depends_on"]["nodes"]
    assert {f"source.customer_mdm.bi.{v.name}" for v in BI_VIEWS} <= set(bi_views)
    assert "model.customer_mdm.dim_customer" in bi_views
    # the catalogue read the warehouse: the golden model's columns with their types
    golden = catalog["nodes"]["model.customer_mdm.dim_customer"]["columns"]
    assert golden["golden_id"]["type"].lower() in ("varchar", "text") and "birth_date" in golden
    assert "source.customer_mdm.published.dim_customer" in catalog["sources"], "the published table is catalogued"
