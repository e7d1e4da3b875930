-- Who marketing may contact: one row per golden customer whose marketing consent is granted
-- (dim_customer.consent_marketing, the latest explicit statement). Customers who withdrew
-- consent, opted out by e-mail or never stated it (unknown) are not here. A contact channel is
-- offered only when it is usable: the e-mail unless bounced or opted out, the phone unless
-- unreachable; a customer with neither is left out too. Rebuilt after every publication
-- (mdm_governance); campaign tools read this table, never dim_customer directly.

with

customers as (

    select * from {{ ref('dim_customer') }}

),

segments as (

    select golden_id, lifecycle_stage, rfm_segment from {{ ref('customer_segments') }}

),

consented as (

    select
        c.golden_id,
        c.name,
        case when c.email_status not in ('missing', 'bounced', 'opted_out') then c.email end as email,
        case when c.phone_status not in ('missing', 'unreachable') then c.phone end as phone,
        c.province,
        c.city,
        c.tier,
        c.consent_marketing_source,
        c.consent_marketing_at,
        s.lifecycle_stage,
        s.rfm_segment
    from customers as c
    left join segments as s on s.golden_id = c.golden_id
    where c.consent_marketing = 'granted'

),

final as (

    select * from consented
    where email is not null or phone is not null

)

select * from final
