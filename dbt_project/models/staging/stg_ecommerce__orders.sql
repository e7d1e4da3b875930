-- One row per online-shop order line, every re-export kept (a later export may carry a new status).
-- Amounts are numeric(18,2); refunds may be negative.
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('ecommerce', 'ecommerce_orders'), clean_text('order_id')) }}

),

renamed as (

    select
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('member_id') }} as member_id,
        {{ clean_text('order_ts') }} as ordered_at_raw,
        {{ clean_text('amount_cny') }} as amount_cny_raw,
        {{ clean_code('status') }} as status,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_iso8601_utc('ordered_at_raw', source_utc_offset()) }} as ordered_at_utc,
        {{ safe_cast_numeric('amount_cny_raw', 18, 2) }} as amount_cny

    from renamed

),

versioned as (

    select
        *,
        row_number() over (
            partition by order_id
            order by
                ordered_at_utc desc nulls last,
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'ecommerce'", '_batch_id', '_row_number']) }} as record_key,
        'ecommerce' as source,
        order_id as source_id,
        order_id,
        member_id,
        ordered_at_raw,
        ordered_at_utc,
        amount_cny_raw,
        amount_cny,
        status,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
