-- Contact events with the contact value standardised like the records' contacts, so that a
-- bounced email or an unreachable phone can be matched to the records that carry it.
-- Incremental: appends the staging rows ingested after this table's newest _ingested_at (a
-- staging row never changes except its is_latest flag, which this model does not carry).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='event_key',
    indexes=postgres_indexes([['event_key'], ['_ingested_at']]),
    on_schema_change='fail',
) }}

with

events as (

    select * from {{ ref('stg_contact_events__events') }}
    {%- if is_incremental() %}
    where _ingested_at > {{ ingested_watermark() }}
    {%- endif %}

),

phones as (

    select * from {{ source('std', 'phone_lookup') }}

),

email_fixes as (

    select * from {{ ref('ref_email_domain_corrections') }}

),

cleaned as (

    select
        e.*,
        {{ email_clean('e.contact_value_raw') }} as email_cleaned
    from events as e

),

final as (

    select
        c.record_key as event_key,
        c.channel,
        c.contact_value_raw,
        case
            when c.channel = 'phone' then p.phone_e164
            when c.channel = 'email'
                then split_part(c.email_cleaned, '@', 1) || '@'
                    || coalesce(ef.domain, split_part(c.email_cleaned, '@', 2))
        end as contact_value,
        c.event,
        c.occurred_at_utc,
        c._source_file,
        c._batch_id,
        c._row_number,
        c._ingested_at
    from cleaned as c
    left join phones as p on c.channel = 'phone' and p.raw = c.contact_value_raw
    left join email_fixes as ef
        on c.channel = 'email' and ef.typo_domain = split_part(c.email_cleaned, '@', 2)

)

select * from final
