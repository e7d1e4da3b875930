-- The current version of every person-bearing source record, in one column layout.
-- Columns a source does not have are NULL; nothing is standardised yet.

with

crm as (

    select * from {{ ref('stg_crm__customers') }} where is_latest

),

members as (

    select * from {{ ref('stg_ecommerce__members') }} where is_latest

),

tickets as (

    select * from {{ ref('stg_callcenter__tickets') }} where is_latest

),

cards as (

    select * from {{ ref('stg_store_pos__cards') }} where is_latest

),

{%- set null_text = 'cast(null as ' ~ dbt.type_string() ~ ')' %}
{%- set null_ts = 'cast(null as ' ~ dbt.type_timestamp() ~ ')' %}

unioned as (

    select
        record_key, source, source_id,
        name_raw, {{ null_text }} as nickname_raw, gender_raw, birth_date_raw, phone_raw, email_raw,
        province_raw, city_raw, district_raw, address_raw, company_raw,
        customer_type_raw, tier_raw, consent_marketing_raw,
        created_at_utc as record_created_at_utc,
        coalesce(updated_at_utc, created_at_utc) as record_updated_at_utc,
        {{ null_ts }} as last_activity_at_utc,
        'Asia/Shanghai' as source_timezone,
        _source_file, _batch_id, _row_number, _ingested_at
    from crm

    union all

    select
        record_key, source, source_id,
        name_raw, nickname_raw, {{ null_text }}, {{ null_text }}, phone_raw, email_raw,
        {{ null_text }}, {{ null_text }}, {{ null_text }}, address_raw, {{ null_text }},
        {{ null_text }}, {{ null_text }}, {{ null_text }},
        registered_at_utc,
        coalesce(last_login_at_utc, registered_at_utc),
        last_login_at_utc,
        'offset in value (ISO 8601) / epoch ms',
        _source_file, _batch_id, _row_number, _ingested_at
    from members

    union all

    select
        record_key, source, source_id,
        name_raw, {{ null_text }}, {{ null_text }}, {{ null_text }}, phone_raw, email_raw,
        {{ null_text }}, city_raw, {{ null_text }}, {{ null_text }}, {{ null_text }},
        {{ null_text }}, {{ null_text }}, {{ null_text }},
        created_at_utc,
        created_at_utc,
        created_at_utc,
        'Asia/Shanghai',
        _source_file, _batch_id, _row_number, _ingested_at
    from tickets

    union all

    select
        record_key, source, source_id,
        name_raw, {{ null_text }}, {{ null_text }}, birth_date_raw, phone_raw, {{ null_text }},
        {{ null_text }}, store_city_raw, {{ null_text }}, {{ null_text }}, {{ null_text }},
        {{ null_text }}, {{ null_text }}, {{ null_text }},
        enrolled_at_utc,
        enrolled_at_utc,
        {{ null_ts }},
        'Asia/Shanghai',
        _source_file, _batch_id, _row_number, _ingested_at
    from cards

),

final as (

    select * from unioned

)

select * from final
