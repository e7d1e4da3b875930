-- One row per call-centre service ticket line, every re-export kept.
-- caller_name was typed by an agent while listening: homophones are common (standardised later).
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('callcenter', 'callcenter'), clean_text('ticket_id')) }}

),

renamed as (

    select
        {{ clean_text('ticket_id') }} as ticket_id,
        {{ clean_text('caller_name') }} as name_raw,
        {{ clean_text('caller_phone') }} as phone_raw,
        {{ clean_text('callback_email') }} as email_raw,
        {{ clean_text('city') }} as city_raw,
        {{ clean_code('channel') }} as channel,
        {{ clean_text('created_at') }} as created_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_local_timestamp('created_at_raw') }} as created_at_local

    from renamed

),

versioned as (

    select
        *,
        {{ local_to_utc('created_at_local') }} as created_at_utc,
        row_number() over (
            partition by ticket_id
            order by
                created_at_local desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'callcenter'", '_batch_id', '_row_number']) }} as record_key,
        'callcenter' as source,
        ticket_id as source_id,
        ticket_id,
        name_raw,
        phone_raw,
        email_raw,
        city_raw,
        channel,
        created_at_raw,
        created_at_local,
        created_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
