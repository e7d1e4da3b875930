-- One row per request to erase a person (PIPL art. 47, GDPR art. 17).
-- identifier_type says which kind of value identifier_value_raw holds (mobile, email, an id ...).
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('erasure', 'erasure'), clean_text('request_id')) }}

),

renamed as (

    select
        {{ clean_text('request_id') }} as request_id,
        {{ clean_code('identifier_type') }} as identifier_type,
        {{ clean_text('identifier_value') }} as identifier_value_raw,
        {{ clean_text('requested_at') }} as requested_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_any_utc('requested_at_raw') }} as requested_at_utc

    from renamed

),

versioned as (

    select
        *,
        row_number() over (
            partition by request_id
            order by
                requested_at_utc desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'erasure'", '_batch_id', '_row_number']) }} as record_key,
        'erasure' as source,
        request_id as source_id,
        request_id,
        identifier_type,
        identifier_value_raw,
        requested_at_raw,
        requested_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
