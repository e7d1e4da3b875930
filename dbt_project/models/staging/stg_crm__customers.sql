-- One row per CRM export row (person or company contact), every re-export kept.
-- Values that the intermediate layer standardises (names, phones, dates ...) stay text (*_raw).
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('crm', 'crm'), clean_text('crm_id')) }}

),

renamed as (

    select
        {{ clean_text('crm_id') }} as crm_id,
        {{ clean_text('name') }} as name_raw,
        {{ clean_text('gender') }} as gender_raw,
        {{ clean_text('birth_date') }} as birth_date_raw,
        {{ clean_text('mobile') }} as phone_raw,
        {{ clean_text('email') }} as email_raw,
        {{ clean_text('province') }} as province_raw,
        {{ clean_text('city') }} as city_raw,
        {{ clean_text('district') }} as district_raw,
        {{ clean_text('address') }} as address_raw,
        {{ clean_text('company') }} as company_raw,
        {{ clean_text('customer_type') }} as customer_type_raw,
        {{ clean_text('tier') }} as tier_raw,
        {{ clean_text('consent_marketing') }} as consent_marketing_raw,
        {{ clean_text('created_at') }} as created_at_raw,
        {{ clean_text('updated_at') }} as updated_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_local_timestamp('created_at_raw') }} as created_at_local,
        {{ safe_cast_local_timestamp('updated_at_raw') }} as updated_at_local

    from renamed

),

versioned as (

    select
        *,
        {{ local_to_utc('created_at_local') }} as created_at_utc,
        {{ local_to_utc('updated_at_local') }} as updated_at_utc,
        row_number() over (
            partition by crm_id
            order by
                updated_at_local desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'crm'", '_batch_id', '_row_number']) }} as record_key,
        'crm' as source,
        crm_id as source_id,
        crm_id,
        name_raw,
        gender_raw,
        birth_date_raw,
        phone_raw,
        email_raw,
        province_raw,
        city_raw,
        district_raw,
        address_raw,
        company_raw,
        customer_type_raw,
        tier_raw,
        consent_marketing_raw,
        created_at_raw,
        created_at_local,
        created_at_utc,
        updated_at_raw,
        updated_at_local,
        updated_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
