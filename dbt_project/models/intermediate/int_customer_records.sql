-- One row per person-bearing source record (its current version): every field standardised,
-- the original values kept alongside (*_raw), lineage to the raw row kept.
-- Python standardisation arrives through the std.* lookups (customer_mdm.standardize.step).
-- Incremental: the records whose current version was ingested after this table's newest
-- _ingested_at replace their previous version (a record never loses its current version).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key=['source', 'source_id'],
    indexes=postgres_indexes([['source', 'source_id'], ['_ingested_at']]),
    on_schema_change='fail',
) }}

with

records as (

    select * from {{ ref('int_person_records__unioned') }}
    {%- if is_incremental() %}
    where _ingested_at > {{ ingested_watermark() }}
    {%- endif %}

),

names as (

    select * from {{ source('std', 'name_lookup') }}

),

phones as (

    select * from {{ source('std', 'phone_lookup') }}

),

birth_dates as (

    select * from {{ source('std', 'birth_date_lookup') }}

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

emails as (

    select
        record_key,
        {{ email_clean('email_raw') }} as email_cleaned
    from records

),

email_parts as (

    select
        record_key,
        email_cleaned,
        split_part(email_cleaned, '@', 1) as email_local,
        split_part(email_cleaned, '@', 2) as email_domain_raw,
        (length(email_cleaned) - length(replace(email_cleaned, '@', '')) = 1) as has_one_at
    from emails

),

joined as (

    select
        r.*,

        n.name_std as real_name_std,
        n.name_script as real_name_script,
        n.name_pinyin as real_name_pinyin,
        n.name_pinyin_fuzzy as real_name_pinyin_fuzzy,
        n.name_sorted_key as real_name_sorted_key,
        n.name_issue as real_name_issue,
        nick.is_pinyin_handle as nickname_is_pinyin,
        nick.name_pinyin as nickname_pinyin,
        nick.name_pinyin_fuzzy as nickname_pinyin_fuzzy,
        nick.name_sorted_key as nickname_sorted_key,

        p.phone_e164,
        p.phone_kind,
        p.phone_valid,
        p.phone_issue,

        ep.email_cleaned,
        ep.email_local,
        ep.has_one_at,
        coalesce(ef.domain, ep.email_domain_raw) as email_domain,
        (ef.domain is not null) as email_domain_corrected,

        bd.birth_date,
        bd.birth_year,
        bd.birth_month,
        bd.birth_day,
        bd.birth_precision,
        bd.birth_issue,

        rg.province_std as region_province,
        rg.city_std as region_city,
        rg.district_std as region_district,
        rg.region_issue,
        ad.province_std as address_province,
        ad.city_std as address_city,
        ad.district_std as address_district,
        ad.street as address_street,
        ad.address_issue,

        g.code as gender,
        c.code as consent_code,
        t.code as tier,
        ct.code as customer_type

    from records as r
    left join names as n on n.raw = r.name_raw
    left join names as nick on nick.raw = r.nickname_raw
    left join phones as p on p.raw = r.phone_raw
    left join email_parts as ep on ep.record_key = r.record_key
    left join email_fixes as ef on ef.typo_domain = ep.email_domain_raw
    left join birth_dates as bd on bd.raw = r.birth_date_raw
    left join regions as rg
        on rg.lookup_key = {{ std_key(['r.province_raw', 'r.city_raw', 'r.district_raw']) }}
    left join addresses as ad on ad.raw = r.address_raw
    left join codes as g on g.domain = 'gender' and g.raw_value = lower(r.gender_raw)
    left join codes as c on c.domain = 'consent' and c.raw_value = lower(r.consent_marketing_raw)
    left join codes as t on t.domain = 'tier' and t.raw_value = lower(r.tier_raw)
    left join codes as ct on ct.domain = 'customer_type' and ct.raw_value = lower(r.customer_type_raw)

),

-- the contract's types exactly (codes come from the seeds as varchar on PostgreSQL), so that an
-- incremental batch has the table's column types
final as (

    select
        record_key,
        source,
        source_id,

        -- name: the real name when there is one; a pinyin-only nickname still gives a key
        name_raw,
        nickname_raw,
        real_name_std as name_std,
        coalesce(real_name_script, case when nickname_is_pinyin then 'pinyin_handle' end) as name_script,
        coalesce(real_name_pinyin, case when nickname_is_pinyin then nickname_pinyin end) as name_pinyin,
        coalesce(real_name_pinyin_fuzzy, case when nickname_is_pinyin then nickname_pinyin_fuzzy end)
            as name_pinyin_fuzzy,
        coalesce(real_name_sorted_key, case when nickname_is_pinyin then nickname_sorted_key end)
            as name_sorted_key,
        coalesce(nickname_is_pinyin, false) as nickname_is_pinyin,
        real_name_issue as name_issue,

        gender_raw,
        cast(gender as text) as gender,

        birth_date_raw,
        birth_date,
        birth_year,
        birth_month,
        birth_day,
        birth_precision,
        birth_issue,

        phone_raw,
        phone_e164,
        phone_kind,
        coalesce(phone_valid, false) as phone_valid,
        phone_issue,

        email_raw,
        case
            when has_one_at and {{ email_is_valid("email_local || '@' || email_domain") }}
                then email_local || '@' || email_domain
        end as email,
        cast(email_domain as text) as email_domain,
        coalesce(email_domain_corrected, false) as email_domain_corrected,
        case
            when email_raw is null then null
            else coalesce(has_one_at, false) and {{ email_is_valid("email_local || '@' || email_domain") }}
        end as email_valid,

        province_raw,
        city_raw,
        district_raw,
        address_raw,
        coalesce(region_province, address_province) as province,
        coalesce(region_city, address_city) as city,
        coalesce(region_district, address_district) as district,
        coalesce(address_street, address_raw) as street,
        -- the issue of whichever lookup gave the province (the region columns win over the address)
        case when region_province is not null then region_issue else address_issue end as region_issue,

        company_raw,
        {{ company_std(company_clean('company_raw')) }} as company_std,
        {{ company_key(company_std(company_clean('company_raw'))) }} as company_key,
        customer_type_raw,
        cast(customer_type as text) as customer_type,
        tier_raw,
        cast(tier as text) as tier,
        consent_marketing_raw,
        case consent_code when 'true' then true when 'false' then false end as consent_marketing,

        record_created_at_utc,
        record_updated_at_utc,
        last_activity_at_utc,
        source_timezone,

        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from joined

)

select * from final
