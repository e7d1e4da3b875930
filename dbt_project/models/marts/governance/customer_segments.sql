-- One row per golden customer: lifecycle stage, RFM scores and RFM value segment, as of
-- governance_as_of (dbt var `as_of`, else the latest order time). Rebuilt on every run.
--
-- Orders reach a golden id through the cross-reference (customer_xref, source 'ecommerce',
-- source_id = fct_orders.member_id). Only orders up to as_of count. A purchase is a 'paid'
-- order; refunds (negative amounts) are netted off, cancelled orders are ignored:
--   frequency = purchases, monetary = purchases minus refunds (CNY), recency = days since the
--   last purchase.
-- RFM scores 1-5 are quintiles over the customers with at least one purchase (ntile(5)
-- semantics: 5 = most recent / most frequent / highest spend), except that ties share the
-- quintile of the first tied customer, so two customers with the same behaviour get the same score.
--
-- lifecycle_stage, first rule that applies:
--   vip       tier vip, or in the top monetary decile of the active customers
--   active    last purchase within 365 days
--   lapsed    last purchase more than 365 days ago
--   prospect  no purchase
-- rfm_segment, first rule that applies (R, F, M = the scores):
--   no_orders    no purchase
--   champions    R >= 4 and F >= 4 and M >= 4
--   new          R >= 4 and a single purchase
--   loyal        R >= 3 and F + M >= 6
--   promising    R >= 3
--   at_risk      R <= 2 and F + M >= 6 (used to buy often or much, not lately)
--   hibernating  R <= 2 and F + M < 6

with

as_of as (

    select as_of_utc from {{ ref('governance_as_of') }}

),

customers as (

    select golden_id, tier from {{ ref('dim_customer') }}

),

member_golden as (

    select source_id as member_id, golden_id from {{ ref('customer_xref') }} where source = 'ecommerce'

),

orders as (

    select
        m.golden_id,
        o.ordered_at_utc,
        o.amount_cny,
        (o.status = 'paid' and not o.is_refund) as is_purchase,
        o.is_refund
    from {{ ref('fct_orders') }} as o
    inner join member_golden as m on m.member_id = o.member_id
    cross join as_of as a
    where o.ordered_at_utc <= a.as_of_utc and coalesce(o.status, '') <> 'cancelled'

),

per_customer as (

    select
        golden_id,
        sum(case when is_purchase then 1 else 0 end) as purchases,
        sum(case when is_refund then 1 else 0 end) as refunds,
        sum(
            case
                when is_refund then -abs(coalesce(amount_cny, 0))
                when is_purchase then coalesce(amount_cny, 0)
                else 0
            end
        ) as monetary_net,
        min(case when is_purchase then ordered_at_utc end) as first_order_at_utc,
        max(case when is_purchase then ordered_at_utc end) as last_order_at_utc
    from orders
    group by golden_id

),

buyers as (

    select
        p.*,
        {{ dbt.datediff('p.last_order_at_utc', 'a.as_of_utc', 'day') }} as recency_days
    from per_customer as p
    cross join as_of as a
    where p.purchases > 0

),

scored as (

    select
        *,
        cast(1 + floor(5.0 * (rank() over (order by last_order_at_utc) - 1) / count(*) over ()) as integer)
            as recency_score,
        cast(1 + floor(5.0 * (rank() over (order by purchases) - 1) / count(*) over ()) as integer)
            as frequency_score,
        cast(1 + floor(5.0 * (rank() over (order by monetary_net) - 1) / count(*) over ()) as integer)
            as monetary_score,
        (recency_days <= 365) as is_active
    from buyers

),

deciles as (

    select
        *,
        cast(
            1 + floor(
                10.0 * (rank() over (partition by is_active order by monetary_net desc) - 1)
                / count(*) over (partition by is_active)
            ) as integer
        ) as monetary_decile_in_stage
    from scored

),

final as (

    select
        c.golden_id,
        c.tier,
        case
            when c.tier = 'vip' or (d.is_active and d.monetary_decile_in_stage = 1) then 'vip'
            when d.is_active then 'active'
            when d.last_order_at_utc is not null then 'lapsed'
            else 'prospect'
        end as lifecycle_stage,
        coalesce(p.purchases, 0) as orders_count,
        coalesce(p.refunds, 0) as refunds_count,
        cast(coalesce(p.monetary_net, 0) as numeric(18, 2)) as monetary_net_cny,
        d.first_order_at_utc,
        d.last_order_at_utc,
        d.recency_days,
        d.recency_score,
        d.frequency_score,
        d.monetary_score,
        case
            when d.golden_id is not null
                then cast(d.recency_score as {{ dbt.type_string() }})
                    || cast(d.frequency_score as {{ dbt.type_string() }})
                    || cast(d.monetary_score as {{ dbt.type_string() }})
        end as rfm_score,
        case
            when d.golden_id is null then 'no_orders'
            when d.recency_score >= 4 and d.frequency_score >= 4 and d.monetary_score >= 4 then 'champions'
            when d.recency_score >= 4 and d.purchases = 1 then 'new'
            when d.recency_score >= 3 and d.frequency_score + d.monetary_score >= 6 then 'loyal'
            when d.recency_score >= 3 then 'promising'
            when d.frequency_score + d.monetary_score >= 6 then 'at_risk'
            else 'hibernating'
        end as rfm_segment,
        a.as_of_utc
    from customers as c
    cross join as_of as a
    left join per_customer as p on p.golden_id = c.golden_id
    left join deciles as d on d.golden_id = c.golden_id

)

select * from final
