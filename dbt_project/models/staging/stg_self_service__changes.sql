-- One row per change a customer made to their own data in the self-service portal.
-- source_system + source_record_id name the record changed; field + new_value_raw say how.
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('self_service', 'self_service'), clean_text('event_id')) }}

),

renamed as (

    select
        {{ clean_text('event_id') }} as event_id,
        {{ clean_code('source_system') }} as source_system,
        {{ clean_text('source_id') }} as source_record_id,
        {{ clean_code('field') }} as field,
        {{ clean_text('new_value') }} as new_value_raw,
        {{ clean_text('submitted_at') }} as submitted_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_any_utc('submitted_at_raw') }} as submitted_at_utc

    from renamed

),

versioned as (

    select
        *,
        row_number() over (
            partition by event_id
            order by
                submitted_at_utc desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'self_service'", '_batch_id', '_row_number']) }} as record_key,
        'self_service' as source,
        event_id as source_id,
        event_id,
        source_system,
        source_record_id,
        field,
        new_value_raw,
        submitted_at_raw,
        submitted_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
