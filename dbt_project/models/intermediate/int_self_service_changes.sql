-- Changes customers made themselves in the portal, with the new value standardised the same
-- way as the source records' fields (the customer is the best authority on their contacts).
-- Incremental: every version of the changes (event_id) with a version ingested after this
-- table's newest _ingested_at replaces their rows (is_latest may move to the new version).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='change_key',
    indexes=postgres_indexes([['change_key'], ['_ingested_at']]),
    on_schema_change='fail',
) }}

with

changes as (

    select * from {{ ref('stg_self_service__changes') }}
    {%- if is_incremental() %}
    where coalesce(event_id, '') in (
        select coalesce(event_id, '')
        from {{ ref('stg_self_service__changes') }}
        where _ingested_at > {{ ingested_watermark() }}
    )
    {%- endif %}

),

phones as (

    select * from {{ source('std', 'phone_lookup') }}

),

regions as (

    select * from {{ source('std', 'region_lookup') }}

),

addresses as (

    select * from {{ source('std', 'address_lookup') }}

),

codes as (

    select * from {{ ref('ref_code_values') }}

),

email_fixes as (

    select * from {{ ref('ref_email_domain_corrections') }}

),

cleaned as (

    select
        c.*,
        {{ email_clean('c.new_value_raw') }} as email_cleaned
    from changes as c

),

final as (

    select
        c.record_key as change_key,
        c.event_id,
        c.source_system,
        c.source_record_id,
        c.field,
        c.new_value_raw,
        case c.field
            when 'mobile' then p.phone_e164
            when 'email' then
                split_part(c.email_cleaned, '@', 1) || '@'
                || coalesce(ef.domain, split_part(c.email_cleaned, '@', 2))
            when 'province' then rp.province_std
            when 'city' then rc.city_std
            when 'district' then rd.district_std
            when 'address' then coalesce(a.street, c.new_value_raw)
            when 'consent_marketing' then cc.code
            else c.new_value_raw
        end as new_value,
        case when c.field = 'address' then a.province_std end as address_province,
        case when c.field = 'address' then a.city_std end as address_city,
        case when c.field = 'address' then a.district_std end as address_district,
        c.submitted_at_utc,
        c.is_latest,
        c._source_file,
        c._batch_id,
        c._row_number,
        c._ingested_at
    from cleaned as c
    left join phones as p on c.field = 'mobile' and p.raw = c.new_value_raw
    left join email_fixes as ef
        on c.field = 'email' and ef.typo_domain = split_part(c.email_cleaned, '@', 2)
    left join regions as rp
        on c.field = 'province' and rp.lookup_key = {{ std_key(['c.new_value_raw', "''", "''"]) }}
    left join regions as rc
        on c.field = 'city' and rc.lookup_key = {{ std_key(["''", 'c.new_value_raw', "''"]) }}
    left join regions as rd
        on c.field = 'district' and rd.lookup_key = {{ std_key(["''", "''", 'c.new_value_raw']) }}
    left join addresses as a on c.field = 'address' and a.raw = c.new_value_raw
    left join codes as cc
        on c.field = 'consent_marketing' and cc.domain = 'consent' and cc.raw_value = lower(c.new_value_raw)

)

select * from final
