-- One row per contact event (a bounce, an unreachable number, a verification, an opt-out).
-- Events carry no id: source_id is the lineage (batch + row); event_key is the event's content,
-- so the same event re-exported in several batches is counted once (is_latest).
-- Incremental (macros/incremental.sql): re-reads every raw row of the keys with new rows and
-- replaces those keys' rows, so is_latest is ranked over all versions of a key.

{{ config(unique_key='event_key', indexes=postgres_indexes([['event_key'], ['_ingested_at']])) }}

{#- event_key (below) as an expression over the raw columns -#}
{%- set raw_event_key = row_key([
    clean_code('channel'), clean_text('value'), clean_code('event'), clean_text('occurred_at')
]) %}

with

source as (

    {{ changed_keys_source(source('contact_events', 'contact_events'), raw_event_key) }}

),

renamed as (

    select
        {{ clean_code('channel') }} as channel,
        {{ clean_text('value') }} as contact_value_raw,
        {{ clean_code('event') }} as event,
        {{ clean_text('occurred_at') }} as occurred_at_raw,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from source

),

typed as (

    select
        *,
        {{ row_key(['_batch_id', '_row_number']) }} as source_id,
        {{ row_key(['channel', 'contact_value_raw', 'event', 'occurred_at_raw']) }} as event_key,
        {{ safe_cast_any_utc('occurred_at_raw') }} as occurred_at_utc

    from renamed

),

versioned as (

    select
        *,
        row_number() over (
            partition by event_key
            order by
                _ingested_at desc,
                _batch_id desc,
                _row_number desc
        ) as version_rank

    from typed

),

final as (

    select
        {{ row_key(["'contact_events'", '_batch_id', '_row_number']) }} as record_key,
        'contact_events' as source,
        source_id,
        event_key,
        channel,
        contact_value_raw,
        event,
        occurred_at_raw,
        occurred_at_utc,
        (version_rank = 1) as is_latest,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at

    from versioned

)

select * from final
