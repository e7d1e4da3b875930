-- Every candidate value for every golden attribute, with what survivorship ranks it by.
-- One row per (golden_id, attribute, source record); dim_customer keeps the winner of each.
-- Rules live in the seed ref_survivorship_rules (which sources may provide an attribute and
-- how much each is trusted; 0 = the customer's own self-service change; ranking 'latest' for
-- consent: the most recent explicit statement wins, a withdrawal before a grant of the same time).
-- Incremental: the rows of the golden ids in int_golden_affected are replaced (an id listed
-- there without candidates any more, or gone from mdm.xref, loses its rows).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='golden_id',
    indexes=postgres_indexes([['golden_id']]),
    replace_keys_from='int_golden_affected',
    on_schema_change='fail',
) }}

-- depends_on: {{ ref('int_golden_affected') }}

with

records as (

    select * from {{ ref('int_customer_records') }}

),

xref as (

    select * from {{ source('mdm', 'xref') }}
    {%- if is_incremental() %}
    where golden_id in (select golden_id from {{ ref('int_golden_affected') }})
    {%- endif %}

),

rules as (

    select * from {{ ref('ref_survivorship_rules') }}

),

changes as (

    select * from {{ ref('int_self_service_changes') }}

),

contact_events as (

    select * from {{ ref('int_contact_events') }}

),

linked as (

    select
        x.golden_id,
        r.*
    from records as r
    inner join xref as x on x.source = r.source and x.source_id = r.source_id

),

-- the latest self-service change per record and field, attached to the record's golden id
latest_changes as (

    select
        x.golden_id,
        c.source_system || ':' || c.source_record_id as record_id,
        c.field,
        c.new_value,
        c.address_province,
        c.address_city,
        c.address_district,
        c.submitted_at_utc,
        row_number() over (
            partition by c.source_system, c.source_record_id, c.field
            order by c.submitted_at_utc desc, c.event_id desc
        ) as recency
    from changes as c
    inner join xref as x on x.source = c.source_system and x.source_id = c.source_record_id
    where c.new_value is not null

),

-- a steward's latest correction per golden id and attribute (console), on the record it anchors
steward as (

    select
        x.golden_id,
        c.attribute,
        c.value,
        c.record_id,
        c.corrected_at,
        row_number() over (
            partition by x.golden_id, c.attribute order by c.corrected_at desc, c.correction_id desc
        ) as recency
    from {{ source('mdm', 'steward_corrections') }} as c
    inner join xref as x on x.record_id = c.record_id

),

-- what we last learnt about a contact value: bounced, unreachable, verified, opted out
contact_status as (

    select channel, contact_value, event
    from (
        select
            channel,
            contact_value,
            event,
            row_number() over (partition by channel, contact_value order by occurred_at_utc desc) as recency
        from contact_events
        where contact_value is not null
    ) as ranked
    where recency = 1

),

-- the latest opt-out per email (a marketing consent withdrawal)
opt_outs as (

    select contact_value, max(occurred_at_utc) as occurred_at_utc
    from contact_events
    where channel = 'email' and event = 'opted_out' and contact_value is not null
    group by contact_value

),

{%- set null_text = 'cast(null as ' ~ dbt.type_string() ~ ')' %}

candidates as (

    select golden_id, 'name' as attribute, name_std as value, {{ null_text }} as province,
        {{ null_text }} as city, {{ null_text }} as district, source, source || ':' || source_id as record_id,
        case when name_issue is null and name_script in ('han', 'latin') then 0 else 1 end as quality_rank,
        record_updated_at_utc as observed_at
    from linked where name_std is not null

    union all

    select golden_id, 'gender', gender, null, null, null, source, source || ':' || source_id, 0,
        record_updated_at_utc
    from linked where gender is not null

    union all

    select golden_id, 'birth_date', cast(birth_date as {{ dbt.type_string() }}), null, null, null, source,
        source || ':' || source_id, case when birth_issue is null then 0 else 1 end, record_updated_at_utc
    from linked where birth_precision = 'full' and birth_date is not null

    union all

    select golden_id, 'phone', phone_e164, null, null, null, source, source || ':' || source_id,
        case phone_kind when 'mobile' then 0 else 1 end, record_updated_at_utc
    from linked where phone_valid and phone_e164 is not null

    union all

    select golden_id, 'phone', new_value, null, null, null, 'self_service', record_id, 0, submitted_at_utc
    from latest_changes where field = 'mobile' and recency = 1

    union all

    select golden_id, 'email', email, null, null, null, source, source || ':' || source_id,
        case when email_domain_corrected then 1 else 0 end, record_updated_at_utc
    from linked where email_valid and email is not null

    union all

    select golden_id, 'email', new_value, null, null, null, 'self_service', record_id, 0, submitted_at_utc
    from latest_changes where field = 'email' and recency = 1 and new_value like '%_@_%._%'

    union all

    select golden_id, 'address', street, province, city, district, source, source || ':' || source_id,
        case when district is not null then 0 when city is not null then 1 else 2 end, record_updated_at_utc
    from linked where province is not null or street is not null

    union all

    select golden_id, 'address', new_value, address_province, address_city, address_district, 'self_service',
        record_id, 0, submitted_at_utc
    from latest_changes where field = 'address' and recency = 1

    union all

    select golden_id, 'company', company_std, null, null, null, source, source || ':' || source_id, 0,
        record_updated_at_utc
    from linked where company_std is not null

    union all

    select golden_id, 'customer_type', customer_type, null, null, null, source, source || ':' || source_id, 0,
        record_updated_at_utc
    from linked where customer_type is not null

    union all

    select golden_id, 'tier', tier, null, null, null, source, source || ':' || source_id, 0,
        record_updated_at_utc
    from linked where tier is not null

    union all

    -- consent: a withdrawal ranks before a grant stated at the same time (quality_rank)
    select golden_id, 'consent_marketing', case when consent_marketing then 'true' else 'false' end,
        null, null, null, source, source || ':' || source_id, case when consent_marketing then 1 else 0 end,
        record_updated_at_utc
    from linked where consent_marketing is not null

    union all

    select golden_id, 'consent_marketing', new_value, null, null, null, 'self_service', record_id,
        case new_value when 'false' then 0 else 1 end, submitted_at_utc
    from latest_changes where field = 'consent_marketing' and recency = 1 and new_value in ('true', 'false')

    union all

    -- a steward's correction wins until the customer states the attribute again (self-service)
    select s.golden_id, s.attribute, s.value, null, null, null, 'steward', s.record_id, 0, s.corrected_at
    from steward as s
    where s.recency = 1 and not exists (
        select 1 from latest_changes as lc
        where lc.golden_id = s.golden_id and lc.recency = 1 and lc.submitted_at_utc > s.corrected_at
            and lc.field = case s.attribute when 'phone' then 'mobile' else s.attribute end
    )

    union all

    -- an opt-out reported for a record's email (contact_events) withdraws marketing consent
    select l.golden_id, 'consent_marketing', 'false', null, null, null, 'contact_events',
        l.source || ':' || l.source_id, 0, e.occurred_at_utc
    from linked as l
    inner join opt_outs as e on e.contact_value = l.email

),

final as (

    select
        c.golden_id,
        c.attribute,
        c.value,
        c.province,
        c.city,
        c.district,
        c.source,
        c.record_id,
        -- ranking 'latest' (consent): every source ranks alike, the most recent statement wins
        case when r.ranking = 'latest' then 0 else r.trust_rank end as trust_rank,
        c.quality_rank,
        c.observed_at,
        s.event as contact_status,
        -- a bounced email or unreachable phone only wins when nothing better is known
        case when s.event in ('bounced', 'unreachable') then 1 else 0 end as contact_bad,
        case when s.event = 'verified' then 0 else 1 end as contact_unverified
    from candidates as c
    inner join rules as r on r.attribute = c.attribute and r.source = c.source
    left join contact_status as s
        on c.attribute in ('phone', 'email')
        and s.channel = case c.attribute when 'phone' then 'phone' else 'email' end
        and s.contact_value = c.value

)

select * from final
