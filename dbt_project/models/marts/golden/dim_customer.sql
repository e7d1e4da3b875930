-- The golden customer table: one row per real person (golden_id), each attribute chosen by
-- survivorship from the person's source records, with the source record it came from.
-- Ranking: bad contacts (bounced, unreachable) last, then source trust (self-service first),
-- then verified contacts, then the most recent, then the most complete, then record id.
-- Consent (ranking 'latest' in ref_survivorship_rules): the most recent explicit statement from
-- any source (CRM, self-service change, e-mail opt-out event); granted / withdrawn / unknown.
-- Incremental: the golden ids in int_golden_affected are rebuilt (or removed when they are no
-- longer in mdm.xref).

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

candidates as (

    select * from {{ ref('int_golden_candidates') }}
    {%- if is_incremental() %}
    where golden_id in (select golden_id from {{ ref('int_golden_affected') }})
    {%- endif %}

),

records as (

    select
        x.golden_id,
        r.source,
        r.record_created_at_utc,
        r.record_updated_at_utc,
        r.name_pinyin,
        r.source || ':' || r.source_id as record_id
    from {{ ref('int_customer_records') }} as r
    inner join {{ source('mdm', 'xref') }} as x on x.source = r.source and x.source_id = r.source_id
    {%- if is_incremental() %}
    where x.golden_id in (select golden_id from {{ ref('int_golden_affected') }})
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by golden_id, attribute
            order by
                contact_bad,
                trust_rank,
                contact_unverified,
                observed_at desc nulls last,
                quality_rank,
                record_id
        ) as survivor_rank
    from candidates

),

winners as (

    select * from ranked where survivor_rank = 1

),

{%- set attributes = ['name', 'gender', 'birth_date', 'phone', 'email', 'company', 'customer_type', 'tier',
                      'consent_marketing'] %}

pivoted as (

    select
        golden_id,
        {%- for a in attributes %}
        max(case when attribute = '{{ a }}' then value end) as {{ a }}_value,
        max(case when attribute = '{{ a }}' then record_id end) as {{ a }}_source_record,
        {%- endfor %}
        max(case when attribute = 'consent_marketing' then source end) as consent_marketing_source,
        max(case when attribute = 'consent_marketing' then observed_at end) as consent_marketing_at,
        max(case when attribute = 'phone' then contact_status end) as phone_last_event,
        max(case when attribute = 'email' then contact_status end) as email_last_event,
        max(case when attribute = 'address' then province end) as province,
        max(case when attribute = 'address' then city end) as city,
        max(case when attribute = 'address' then district end) as district,
        max(case when attribute = 'address' then value end) as street,
        max(case when attribute = 'address' then record_id end) as address_source_record
    from winners
    group by golden_id

),

person as (

    select
        golden_id,
        count(*) as source_record_count,
        count(distinct source) as source_count,
        min(record_created_at_utc) as first_seen_at_utc,
        max(record_updated_at_utc) as last_updated_at_utc,
        min(name_pinyin) as name_pinyin
    from records
    group by golden_id

),

final as (

    select
        p.golden_id,
        v.name_value as name,
        p.name_pinyin,
        v.name_source_record,
        v.gender_value as gender,
        v.gender_source_record,
        cast(v.birth_date_value as date) as birth_date,
        v.birth_date_source_record,
        v.phone_value as phone,
        case
            when v.phone_value is null then 'missing'
            when v.phone_last_event = 'unreachable' then 'unreachable'
            when v.phone_last_event = 'verified' then 'verified'
            else 'unverified'
        end as phone_status,
        v.phone_source_record,
        v.email_value as email,
        case
            when v.email_value is null then 'missing'
            when v.email_last_event = 'bounced' then 'bounced'
            when v.email_last_event = 'verified' then 'verified'
            when v.email_last_event = 'opted_out' then 'opted_out'
            else 'unverified'
        end as email_status,
        v.email_source_record,
        v.province,
        v.city,
        v.district,
        v.street,
        v.address_source_record,
        v.company_value as company,
        v.company_source_record,
        v.customer_type_value as customer_type,
        v.tier_value as tier,
        -- consent per purpose: the latest explicit statement; no statement = unknown (not consented)
        case v.consent_marketing_value
            when 'true' then 'granted' when 'false' then 'withdrawn' else 'unknown'
        end as consent_marketing,
        v.consent_marketing_source,
        v.consent_marketing_source_record,
        v.consent_marketing_at,
        (
            (v.phone_value is null or coalesce(v.phone_last_event, '') = 'unreachable')
            and (v.email_value is null or coalesce(v.email_last_event, '') = 'bounced')
        ) as needs_new_contact,
        p.source_record_count,
        p.source_count,
        p.first_seen_at_utc,
        p.last_updated_at_utc
    from person as p
    left join pivoted as v on v.golden_id = p.golden_id

)

select * from final
