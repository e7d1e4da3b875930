-- How fresh every golden field is: one row per (golden_id, field) that has a value, when it was
-- last confirmed and when it is due for re-verification under the freshness policy
-- (seed ref_freshness_policy; the tier follows ref_customer_review_cycles).
--
-- "Last confirmed" is the latest of
--   * the record_updated_at_utc of the field's source record (dim_customer.*_source_record);
--     tier and customer_type have no *_source_record: their latest record carrying the golden value;
--   * a self-service change of that record that submitted the golden value (the customer said so);
--   * a verified contact event for the golden phone or email.
-- Behaviour fields (review interval 0) are recomputed on every run and are not listed here.
-- The scorecard's timeliness and the reverification_worklist read this model.

{%- set text = dbt.type_string() %}

with

as_of as (

    select as_of_utc, cast(as_of_utc as date) as as_of_date from {{ ref('governance_as_of') }}

),

customers as (

    select * from {{ ref('dim_customer') }}

),

xref as (

    select record_id, golden_id from {{ ref('customer_xref') }}

),

records as (

    select
        source || ':' || source_id as record_id,
        source,
        tier,
        customer_type,
        record_created_at_utc,
        record_updated_at_utc
    from {{ ref('int_customer_records') }}

),

policy as (

    select field, field_class, review_interval_days from {{ ref('ref_freshness_policy') }}

),

cycles as (

    select tier, review_cycle_days, review_trigger from {{ ref('ref_customer_review_cycles') }}

),

changes as (

    select
        source_system || ':' || source_record_id as record_id,
        case field when 'mobile' then 'phone' else field end as field,
        new_value,
        submitted_at_utc
    from {{ ref('int_self_service_changes') }}
    where new_value is not null and field in ('mobile', 'email', 'address', 'consent_marketing')

),

verified_events as (

    select channel, contact_value, max(occurred_at_utc) as verified_at_utc
    from {{ ref('int_contact_events') }}
    where event = 'verified' and contact_value is not null
    group by channel, contact_value

),

-- tier and customer_type: the most recent of the person's records that carries the golden value
attribute_records as (

    select x.golden_id, 'tier' as field, r.tier as value, r.record_id, r.record_updated_at_utc
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.tier is not null

    union all

    select x.golden_id, 'customer_type', r.customer_type, r.record_id, r.record_updated_at_utc
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.customer_type is not null

),

attribute_sources as (

    select golden_id, field, value, record_id
    from (
        select
            *,
            row_number() over (
                partition by golden_id, field, value
                order by record_updated_at_utc desc nulls last, record_id desc
            ) as recency
        from attribute_records
    ) as ranked
    where recency = 1

),

fields as (

    select golden_id, tier, 'name' as field, name as value, name_source_record as source_record
    from customers where name is not null

    union all

    select golden_id, tier, 'gender', gender, gender_source_record
    from customers where gender is not null

    union all

    select golden_id, tier, 'birth_date', cast(birth_date as {{ text }}), birth_date_source_record
    from customers where birth_date is not null

    union all

    select golden_id, tier, 'phone', phone, phone_source_record
    from customers where phone is not null

    union all

    select golden_id, tier, 'email', email, email_source_record
    from customers where email is not null

    union all

    select golden_id, tier, 'address', coalesce(street, district, city, province), address_source_record
    from customers where address_source_record is not null

    union all

    select golden_id, tier, 'company', company, company_source_record
    from customers where company is not null

    union all

    select golden_id, tier, 'consent_marketing', case consent_marketing when 'granted' then 'true' else 'false' end,
        consent_marketing_source_record
    from customers where consent_marketing in ('granted', 'withdrawn')

    union all

    select c.golden_id, c.tier, 'customer_type', c.customer_type, a.record_id
    from customers as c
    left join attribute_sources as a
        on a.golden_id = c.golden_id and a.field = 'customer_type' and a.value = c.customer_type
    where c.customer_type is not null

    union all

    select c.golden_id, c.tier, 'tier', c.tier, a.record_id
    from customers as c
    left join attribute_sources as a
        on a.golden_id = c.golden_id and a.field = 'tier' and a.value = c.tier
    where c.tier is not null

),

confirmations as (

    select f.golden_id, f.field, r.record_updated_at_utc as confirmed_at_utc, 'source_record' as confirmed_by
    from fields as f
    inner join records as r on r.record_id = f.source_record

    union all

    select f.golden_id, f.field, c.submitted_at_utc, 'self_service'
    from fields as f
    inner join changes as c
        on c.record_id = f.source_record and c.field = f.field and c.new_value = f.value

    union all

    select f.golden_id, f.field, e.verified_at_utc, 'verified_contact_event'
    from fields as f
    inner join verified_events as e on e.channel = f.field and e.contact_value = f.value
    where f.field in ('phone', 'email')

),

last_confirmed as (

    select golden_id, field, confirmed_at_utc, confirmed_by
    from (
        select
            *,
            row_number() over (
                partition by golden_id, field
                order by confirmed_at_utc desc nulls last, confirmed_by
            ) as recency
        from confirmations
    ) as ranked
    where recency = 1

),

-- the customer got in touch: a call-centre ticket, a self-service change or an order
member_golden as (

    select source_id as member_id, golden_id from {{ ref('customer_xref') }} where source = 'ecommerce'

),

touches as (

    select x.golden_id, r.record_created_at_utc as touched_at_utc, 'call centre ticket' as touch_kind
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.source = 'callcenter'

    union all

    select x.golden_id, c.submitted_at_utc, 'self-service change'
    from {{ ref('int_self_service_changes') }} as c
    inner join xref as x on x.record_id = c.source_system || ':' || c.source_record_id

    union all

    select m.golden_id, o.ordered_at_utc, 'order'
    from {{ ref('fct_orders') }} as o
    inner join member_golden as m on m.member_id = o.member_id

),

last_touch as (

    select golden_id, touched_at_utc, touch_kind
    from (
        select
            t.*,
            row_number() over (
                partition by t.golden_id
                order by t.touched_at_utc desc, t.touch_kind
            ) as recency
        from touches as t
        cross join as_of as a
        where t.touched_at_utc is not null and t.touched_at_utc <= a.as_of_utc
    ) as ranked
    where recency = 1

),

rules as (

    select
        f.golden_id,
        f.field,
        f.tier,
        p.field_class,
        f.source_record,
        lc.confirmed_at_utc as last_confirmed_at_utc,
        lc.confirmed_by,
        case
            when f.field = 'tier' and cy.review_trigger = 'on_contact' then 'tier_on_contact'
            when f.field = 'tier' and cy.review_trigger = 'schedule' then 'tier_cycle'
            else 'policy'
        end as rule,
        case
            when f.field = 'tier' and cy.review_trigger is not null then cy.review_cycle_days
            else p.review_interval_days
        end as review_interval_days,
        lt.touched_at_utc as last_contact_at_utc,
        lt.touch_kind as last_contact_kind
    from fields as f
    inner join policy as p on p.field = f.field
    left join last_confirmed as lc on lc.golden_id = f.golden_id and lc.field = f.field
    left join cycles as cy on f.field = 'tier' and cy.tier = f.tier
    left join last_touch as lt on lt.golden_id = f.golden_id
    where p.review_interval_days > 0

),

dated as (

    select
        r.*,
        a.as_of_utc,
        a.as_of_date,
        case
            when r.rule = 'tier_on_contact' then
                case
                    when r.last_confirmed_at_utc is null or r.last_contact_at_utc > r.last_confirmed_at_utc
                        then cast(r.last_contact_at_utc as date)
                end
            when r.last_confirmed_at_utc is null then a.as_of_date
            else cast({{ customer_mdm.add_interval('day', 'r.review_interval_days', 'r.last_confirmed_at_utc') }} as date)
        end as due_date
    from rules as r
    cross join as_of as a

),

final as (

    select
        golden_id,
        field,
        field_class,
        tier,
        source_record,
        split_part(source_record, ':', 1) as source,
        last_confirmed_at_utc,
        confirmed_by,
        rule,
        review_interval_days,
        case when rule = 'tier_on_contact' then last_contact_at_utc end as last_contact_at_utc,
        case when rule = 'tier_on_contact' then last_contact_kind end as last_contact_kind,
        due_date,
        (due_date is null or due_date > as_of_date) as within_policy,
        as_of_utc
    from dated

)

select * from final
