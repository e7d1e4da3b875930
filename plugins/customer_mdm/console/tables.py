"""The console's serving tables (merged into customer_mdm.hub.serving.SERVING_TABLES): what the
server reads, built at every publication from the warehouse. Every table with personal data
carries ``golden_id`` (and ``other_golden_id``) so that the serving layer's erasure scrub finds
an erased person's rows."""

from __future__ import annotations

#: the longest name prefix customer search finds by its key (a longer query: the key of its first
#: :data:`NAME_PREFIX_MAX` characters, then the name itself)
NAME_PREFIX_MAX = 12

#: name -> select over the warehouse (may read earlier serving tables). Tables a customer page
#: reads by golden id are written in golden-id order: DuckDB's zone maps then skip almost every
#: row group of a point lookup in the snapshot file (PostgreSQL: :data:`CONSOLE_INDEXES`).
CONSOLE_TABLES: dict[str, str] = {
    # the review queue with what makes a pair consequential: a VIP or a customer with orders on
    # either side, and the size of the cluster the pair would merge
    "console_review": """
        with sizes as (
            select golden_id, count(*) as records from mdm.xref group by golden_id
        ),
        ords as (
            select x.golden_id, count(*) as orders
            from marts.fct_orders as o
            inner join mdm.xref as x on x.source = 'ecommerce' and x.source_id = cast(o.member_id as text)
            group by x.golden_id
        ),
        tiers as (
            select golden_id, tier from marts.dim_customer
        ),
        q as (
            select
                q.record_id_l, q.record_id_r, q.match_probability, p.match_weight,
                q.golden_id_l as golden_id, q.golden_id_r as other_golden_id, q.queued_at,
                coalesce(sl.records, 0) as records_l, coalesce(sr.records, 0) as records_r,
                coalesce(ol.orders, 0) + case when q.golden_id_l = q.golden_id_r then 0
                    else coalesce(orr.orders, 0) end as orders,
                case when tl.tier = 'vip' or tr.tier = 'vip' then 1 else 0 end as vip,
                case when q.golden_id_l = q.golden_id_r then 0
                    else coalesce(sl.records, 0) + coalesce(sr.records, 0) end as merge_size
            from mdm.review_queue as q
            left join mdm.pairs as p on p.record_id_l = q.record_id_l and p.record_id_r = q.record_id_r
            left join sizes as sl on sl.golden_id = q.golden_id_l
            left join sizes as sr on sr.golden_id = q.golden_id_r
            left join ords as ol on ol.golden_id = q.golden_id_l
            left join ords as orr on orr.golden_id = q.golden_id_r
            left join tiers as tl on tl.golden_id = q.golden_id_l
            left join tiers as tr on tr.golden_id = q.golden_id_r
        )
        select *,
            row_number() over (
                order by vip desc, case when orders > 0 then 1 else 0 end desc, merge_size desc, orders desc,
                    match_probability desc, record_id_l, record_id_r
            ) as consequence_rank
        from q
        order by consequence_rank
    """,
    # customer search by key, one lookup instead of a scan of every golden customer: each name
    # prefix (up to NAME_PREFIX_MAX characters: "name starts with"), the pinyin and the e-mail in
    # lower case, and each tail of the phone's digits from 7 on ("phone ends with"), in key order
    "console_search": f"""
        with g as (
            select golden_id, name, lower(name_pinyin) as pinyin, lower(email) as email,
                regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') as digits
            from serving.golden_customer
        )
        select 'name' as kind, left(g.name, n.i) as search_key, g.golden_id
        from g cross join generate_series(1, {NAME_PREFIX_MAX}) as n(i)
        where g.name is not null and n.i <= length(g.name)
        union all
        select 'pinyin' as kind, pinyin as search_key, golden_id from g where pinyin is not null and pinyin <> ''
        union all
        select 'email' as kind, email as search_key, golden_id from g where email is not null and email <> ''
        union all
        select 'phone' as kind, right(g.digits, n.i) as search_key, g.golden_id
        from g cross join generate_series(7, 15) as n(i)
        where n.i <= length(g.digits)
        order by search_key, golden_id
    """,
    # every candidate value of every golden attribute, ranked as dim_customer ranks them
    "console_candidates": """
        select c.*, row_number() over (
            partition by c.golden_id, c.attribute
            order by c.contact_bad, c.trust_rank, c.contact_unverified, c.observed_at desc nulls last,
                c.quality_rank, c.record_id
        ) as survivor_rank
        from intermediate.int_golden_candidates as c
        order by c.golden_id
    """,
    "console_audit": (
        "select changed_at, actor, actor_kind, action, golden_id, field, old_value, new_value, reason, run_id "
        "from audit.golden_changes order by golden_id, changed_at"
    ),
    "console_orders": """
        select x.golden_id, o.order_id, o.ordered_at_utc, o.amount_cny, o.status, o.is_refund
        from marts.fct_orders as o
        inner join mdm.xref as x on x.source = 'ecommerce' and x.source_id = cast(o.member_id as text)
        order by x.golden_id
    """,
    "console_corrections": """
        select x.golden_id, c.correction_id, c.record_id, c.attribute, c.value, c.corrected_by, c.corrected_at,
            c.note, c.run_id
        from mdm.steward_corrections as c
        inner join mdm.xref as x on x.record_id = c.record_id
        order by x.golden_id
    """,
    "console_segments": "select * from governance.customer_segments order by golden_id",
    # one row per stale or failed field; the console groups them per customer
    "console_worklist": """
        select w.golden_id, w.field, w.reason_code, w.reason, w.source_record, w.days_overdue, w.priority_rank,
            w.tier, split_part(w.source_record, ':', 1) as source,
            s.rfm_segment, s.monetary_net_cny,
            coalesce(s.recency_score, 0) + coalesce(s.frequency_score, 0) + coalesce(s.monetary_score, 0)
                as rfm_points
        from governance.reverification_worklist as w
        left join governance.customer_segments as s on s.golden_id = w.golden_id
    """,
    # the worklist per customer (one contact re-verifies every due field), with its priority:
    # tier weight x (1 + customer value from the RFM points, 0..1) x urgency of the worst reason
    # (priority_rank 1 = high) x log of the days overdue
    "console_worklist_customers": """
        select golden_id, max(tier) as tier, count(*) as fields,
            string_agg(field, ', ' order by field) as field_list,
            ',' || string_agg(distinct reason_code, ',') || ',' as reasons,
            ',' || string_agg(distinct source, ',') || ',' as sources,
            max(days_overdue) as days_overdue, min(priority_rank) as priority_rank,
            max(rfm_segment) as rfm_segment,
            round(cast((case max(tier) when 'vip' then 3 when 'regular' then 1.5 else 1 end)
                * (1 + greatest(max(rfm_points) - 3, 0) / 12.0) * (4 - min(priority_rank))
                * ln(10 + greatest(max(days_overdue), 0)) as numeric), 1) as score
        from serving.console_worklist
        group by golden_id
        order by score desc, golden_id
    """,
    "console_scorecard": "select * from governance.scorecard_history",
    "console_runs": "select run_id, target, status, started_at, finished_at from ops.runs",
    "console_run_steps": "select run_id, step, status, started_at, finished_at from ops.run_steps",
    # raw_record quotes personal data: only where and why
    "console_quarantine": (
        "select run_id, feed, source_file, kind, row_number, reason, quarantined_at from ops.quarantine"
    ),
}

#: built by the governance step (after the publication) or by the first console action:
#: a refresh that finds them missing skips them
CONSOLE_OPTIONAL = {
    "console_segments",
    "console_worklist",
    "console_worklist_customers",
    "console_scorecard",
    "console_corrections",
    "console_orders",
}

#: PostgreSQL: the indexes of the console's serving tables (customer_mdm.hub.serving._console_indexes)
CONSOLE_INDEXES: dict[str, list[tuple[str, ...]]] = {
    "console_review": [("consequence_rank",)],
    "console_search": [("search_key",)],
    "console_candidates": [("golden_id",)],
    "console_audit": [("golden_id",)],
    "console_orders": [("golden_id",)],
    "console_corrections": [("golden_id",)],
    "console_segments": [("golden_id",)],
    "console_worklist_customers": [("golden_id",)],
}
