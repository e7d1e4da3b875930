-- One row per online-shop order (its latest export), typed, refunds marked.
-- The golden customer id joins in through the cross-reference (record linkage issue).

with

orders as (

    select * from {{ ref('stg_ecommerce__orders') }} where is_latest

),

final as (

    select
        order_id,
        member_id,
        ordered_at_utc,
        amount_cny,
        status,
        (status = 'refunded' or amount_cny < 0) as is_refund,
        _source_file,
        _batch_id,
        _row_number,
        _ingested_at
    from orders

)

select * from final
