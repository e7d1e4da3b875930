-- One row per online-shop order (its latest export), typed, refunds marked.
-- The golden customer id joins in through the cross-reference (record linkage issue).
-- Incremental: the orders whose latest export was ingested after this table's newest
-- _ingested_at replace their previous row.

{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='order_id',
    indexes=postgres_indexes([['order_id'], ['_ingested_at']]),
    on_schema_change='fail',
) }}

with

orders as (

    select * from {{ ref('stg_ecommerce__orders') }}
    where is_latest
    {%- if is_incremental() %}
        and _ingested_at > {{ ingested_watermark() }}
    {%- endif %}

),

final as (

    select
        order_id,
        member_id,
        ordered_at_utc,
        cast(amount_cny as numeric(18, 2)) as amount_cny,  -- the contract's type (a CASE loses it)
        status,
        (status = 'refunded' or amount_cny < 0) as is_refund,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at
    from orders

)

select * from final
