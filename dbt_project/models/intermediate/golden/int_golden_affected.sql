-- The golden ids the incremental golden models rebuild (int_golden_candidates, dim_customer):
-- one row per golden id with the first reason found. Empty on a full refresh (everything is
-- rebuilt). "Since" is ops.dbt_window.since of the golden layer (the newest _ingested_at of the
-- intermediate tables when the golden models were last built), written by the pipeline.
--
--   dirty            listed in mdm.golden_dirty by the link step: membership or member records
--                    changed, merged or retired ids
--   record           a member record's current version was ingested since
--   self_service     a member record got a self-service change since
--   contact_event    a contact value (E.164 phone, e-mail) of a member record or self-service
--                    change got a contact event since
--   membership       the golden table disagrees with mdm.xref: a new id, an id that no longer
--                    exists (it is removed), or an id whose number of records changed

{{ config(materialized='table') }}

{%- set since = layer_since('golden') %}
{%- set dim_customer = existing_model_relation('dim_customer') %}

with

xref as (

    select source, source_id, golden_id from {{ source('mdm', 'xref') }}

),

new_records as (

    select source, source_id
    from {{ ref('int_customer_records') }}
    where _ingested_at > {{ since }}

),

new_changes as (

    select source_system as source, source_record_id as source_id
    from {{ ref('int_self_service_changes') }}
    where _ingested_at > {{ since }}

),

new_contacts as (

    select distinct channel, contact_value
    from {{ ref('int_contact_events') }}
    where _ingested_at > {{ since }} and contact_value is not null

),

-- records and self-service changes that carry a contact value with a new event (equality joins:
-- each one hashes)
contact_holders as (

    select r.source, r.source_id
    from {{ ref('int_customer_records') }} as r
    inner join new_contacts as c on c.channel = 'phone' and c.contact_value = r.phone_e164

    union all

    select r.source, r.source_id
    from {{ ref('int_customer_records') }} as r
    inner join new_contacts as c on c.channel = 'email' and c.contact_value = r.email

    union all

    select s.source_system, s.source_record_id
    from {{ ref('int_self_service_changes') }} as s
    inner join new_contacts as c on c.channel = 'phone' and s.field = 'mobile' and c.contact_value = s.new_value

    union all

    select s.source_system, s.source_record_id
    from {{ ref('int_self_service_changes') }} as s
    inner join new_contacts as c on c.channel = 'email' and s.field = 'email' and c.contact_value = s.new_value

),

reasons as (

    select golden_id, 'dirty' as reason, 1 as priority
    from {{ source('mdm', 'golden_dirty') }}

    union all

    select x.golden_id, 'record', 2
    from new_records as r
    inner join xref as x on x.source = r.source and x.source_id = r.source_id

    union all

    select x.golden_id, 'self_service', 3
    from new_changes as c
    inner join xref as x on x.source = c.source and x.source_id = c.source_id

    union all

    select x.golden_id, 'contact_event', 4
    from contact_holders as h
    inner join xref as x on x.source = h.source and x.source_id = h.source_id

    {%- if dim_customer is not none %}

    union all

    select coalesce(m.golden_id, d.golden_id), 'membership', 5
    from (select golden_id, count(*) as records from xref group by golden_id) as m
    full outer join {{ dim_customer }} as d on d.golden_id = m.golden_id
    where m.golden_id is null or d.golden_id is null or d.source_record_count <> m.records
    {%- endif %}

),

affected as (

    select golden_id, reason
    from (
        select
            golden_id,
            reason,
            row_number() over (partition by golden_id order by priority) as reason_rank
        from reasons
        where golden_id is not null
    ) as ranked
    where reason_rank = 1

),

final as (

    select golden_id, reason from affected
    {%- if flags.FULL_REFRESH %}
    where 1 = 0  -- a full refresh rebuilds every id (constant-false: neither engine runs the query)
    {%- endif %}

)

select * from final
