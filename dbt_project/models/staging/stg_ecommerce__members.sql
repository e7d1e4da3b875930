-- One row per online-shop member account line, every re-export kept.
-- registered_at is ISO 8601 with an offset; last_login_at is epoch milliseconds: both to UTC.
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='source_id', indexes=postgres_indexes([['source_id'], ['_ingested_at']])) }}

with

source as (

    {{ changed_keys_source(source('ecommerce', 'ecommerce_members'), clean_text('member_id')) }}

),

renamed as (

    select
        {{ clean_text('member_id') }} as member_id,
        {{ clean_text('nickname') }} as nickname_raw,
        {{ clean_text('real_name') }} as name_raw,
        {{ clean_text('phone') }} as phone_raw,
        {{ clean_text('email') }} as email_raw,
        {{ clean_text('shipping_address') }} as address_raw,
        {{ clean_text('registered_at') }} as registered_at_raw,
        {{ clean_text('last_login_at') }} as last_login_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ safe_cast_iso8601_utc('registered_at_raw', source_utc_offset()) }} as registered_at_utc,
        coalesce(
            {{ safe_epoch_ms_to_utc('last_login_at_raw') }},
            {{ safe_cast_iso8601_utc('last_login_at_raw', source_utc_offset()) }}
        ) as last_login_at_utc

    from renamed

),

versioned as (

    select
        *,
        -- an account has no update time: the newest export knows the latest login
        row_number() over (
            partition by member_id
            order by
                last_login_at_utc desc nulls last,
                registered_at_utc desc nulls last,
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
        member_id as source_id,
        member_id,
        nickname_raw,
        name_raw,
        phone_raw,
        email_raw,
        address_raw,
        registered_at_raw,
        registered_at_utc,
        last_login_at_raw,
        last_login_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
