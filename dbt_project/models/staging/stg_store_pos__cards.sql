-- One row per offline-store loyalty card line, every re-export kept.
-- birthday is often month-day only (MM-DD): kept as text for the intermediate layer.
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('store_pos', 'store_pos'), clean_text('card_no')) }}

),

renamed as (

    select
        {{ clean_text('card_no') }} as card_no,
        {{ clean_text('name') }} as name_raw,
        {{ clean_text('phone') }} as phone_raw,
        {{ clean_text('birthday') }} as birth_date_raw,
        {{ clean_text('store_city') }} as store_city_raw,
        {{ clean_text('enrolled_at') }} as enrolled_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_local_timestamp('enrolled_at_raw') }} as enrolled_at_local

    from renamed

),

versioned as (

    select
        *,
        {{ local_to_utc('enrolled_at_local') }} as enrolled_at_utc,
        row_number() over (
            partition by card_no
            order by
                enrolled_at_local desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'store_pos'", '_batch_id', '_row_number']) }} as record_key,
        'store_pos' as source,
        card_no as source_id,
        card_no,
        name_raw,
        phone_raw,
        birth_date_raw,
        store_city_raw,
        enrolled_at_raw,
        enrolled_at_local,
        enrolled_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
