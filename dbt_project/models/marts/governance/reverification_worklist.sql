-- The re-verification worklist governance leads open every morning: one row per (golden_id,
-- field) that is due, with the most urgent reason, its due date and priority.
--
-- Reasons (reason_code):
--   new_contact_needed  neither a usable phone nor a usable email (dim_customer.needs_new_contact):
--                       one row, field 'contact'; it replaces the person's phone and email rows
--   contact_failed      the golden phone is unreachable or the golden email bounced
--   stale               last confirmed longer ago than the freshness policy allows
--   tier_cycle          the tier's review cycle has elapsed (vip 90 d, regular 365 d)
--   tier_on_contact     a prospect got in touch after the tier was last confirmed
-- Priority 1 (high): new contact needed, consent to re-confirm, a VIP's failed contact;
-- 2 (medium): failed contacts, stale identity and contact data, VIP tier reviews;
-- 3 (low): stale preferences, other tier reviews.
-- Between reasons of the same priority the most actionable wins (new contact, failed contact,
-- stale, tier cycle, tier on contact), then the earliest due. All reasons of a (golden_id,
-- field) are kept in all_reasons, most urgent first.

{%- set text = dbt.type_string() %}
{#- between reasons of the same priority: the most actionable first -#}
{%- set reason_order -%}
    case reason_code when 'new_contact_needed' then 1 when 'contact_failed' then 2 when 'stale' then 3
        when 'tier_cycle' then 4 else 5 end
{%- endset %}

with

as_of as (

    select as_of_utc, cast(as_of_utc as date) as as_of_date from {{ ref('governance_as_of') }}

),

freshness as (

    select * from {{ ref('governance_field_freshness') }}

),

customers as (

    select
        golden_id,
        tier,
        phone,
        phone_status,
        phone_source_record,
        email,
        email_status,
        email_source_record,
        needs_new_contact
    from {{ ref('dim_customer') }}

),

latest_events as (

    select channel, contact_value, event, occurred_at_utc
    from (
        select
            channel,
            contact_value,
            event,
            occurred_at_utc,
            row_number() over (
                partition by channel, contact_value
                order by occurred_at_utc desc, event
            ) as recency
        from {{ ref('int_contact_events') }}
        where contact_value is not null
    ) as ranked
    where recency = 1

),

contacts as (

    select
        c.*,
        case when pe.event = 'unreachable' then pe.occurred_at_utc end as phone_failed_at_utc,
        case when ee.event = 'bounced' then ee.occurred_at_utc end as email_failed_at_utc
    from customers as c
    left join latest_events as pe on pe.channel = 'phone' and pe.contact_value = c.phone
    left join latest_events as ee on ee.channel = 'email' and ee.contact_value = c.email

),

reasons as (

    -- stale under the freshness policy
    select
        f.golden_id,
        f.field,
        f.field_class,
        'stale' as reason_code,
        'stale: last confirmed ' || coalesce(cast(cast(f.last_confirmed_at_utc as date) as {{ text }}), 'never')
            || ', policy ' || cast(f.review_interval_days as {{ text }}) || ' d' as reason,
        f.due_date,
        f.source_record,
        f.last_confirmed_at_utc,
        case f.field_class when 'consent' then 1 when 'identity_contact' then 2 else 3 end as priority_rank
    from freshness as f
    left join customers as c on c.golden_id = f.golden_id
    where f.rule = 'policy' and not f.within_policy
        and not (coalesce(c.needs_new_contact, false) and f.field in ('phone', 'email'))

    union all

    -- the tier's review cycle
    select
        f.golden_id,
        f.field,
        f.field_class,
        'tier_cycle',
        'tier review cycle: ' || f.tier || ' every ' || cast(f.review_interval_days as {{ text }}) || ' d'
            || ', last confirmed ' || coalesce(cast(cast(f.last_confirmed_at_utc as date) as {{ text }}), 'never'),
        f.due_date,
        f.source_record,
        f.last_confirmed_at_utc,
        case when f.tier = 'vip' then 2 else 3 end
    from freshness as f
    where f.rule = 'tier_cycle' and not f.within_policy

    union all

    -- a prospect got in touch since the tier was last confirmed
    select
        f.golden_id,
        f.field,
        f.field_class,
        'tier_on_contact',
        'tier review on contact: ' || f.tier || ', last contact ' || cast(cast(f.last_contact_at_utc as date) as {{ text }})
            || ' (' || f.last_contact_kind || ')',
        f.due_date,
        f.source_record,
        f.last_confirmed_at_utc,
        3
    from freshness as f
    where f.rule = 'tier_on_contact' and not f.within_policy

    union all

    -- the golden phone is unreachable (and an email still works)
    select
        golden_id,
        'phone',
        'identity_contact',
        'contact_failed',
        'phone unreachable: last event ' || cast(cast(phone_failed_at_utc as date) as {{ text }}),
        cast(phone_failed_at_utc as date),
        phone_source_record,
        cast(null as {{ dbt.type_timestamp() }}),
        case when tier = 'vip' then 1 else 2 end
    from contacts
    where phone_failed_at_utc is not null and not needs_new_contact

    union all

    -- the golden email bounced (and a phone still works)
    select
        golden_id,
        'email',
        'identity_contact',
        'contact_failed',
        'email bounced: last event ' || cast(cast(email_failed_at_utc as date) as {{ text }}),
        cast(email_failed_at_utc as date),
        email_source_record,
        cast(null as {{ dbt.type_timestamp() }}),
        case when tier = 'vip' then 1 else 2 end
    from contacts
    where email_failed_at_utc is not null and not needs_new_contact

    union all

    -- no usable contact at all
    select
        c.golden_id,
        'contact',
        'identity_contact',
        'new_contact_needed',
        'no valid contact: '
            || case c.email_status when 'bounced' then 'email bounced' when 'missing' then 'no email'
                else 'email ' || c.email_status end
            || ', '
            || case c.phone_status when 'unreachable' then 'phone unreachable' when 'missing' then 'no phone'
                else 'phone ' || c.phone_status end,
        case
            when c.phone_failed_at_utc is null and c.email_failed_at_utc is null then a.as_of_date
            when c.email_failed_at_utc is null or c.phone_failed_at_utc > c.email_failed_at_utc
                then cast(c.phone_failed_at_utc as date)
            else cast(c.email_failed_at_utc as date)
        end,
        cast(null as {{ text }}),
        cast(null as {{ dbt.type_timestamp() }}),
        1
    from contacts as c
    cross join as_of as a
    where c.needs_new_contact

),

due as (

    select r.*, a.as_of_utc, a.as_of_date
    from reasons as r
    cross join as_of as a
    where r.due_date <= a.as_of_date

),

ranked as (

    select
        *,
        row_number() over (
            partition by golden_id, field
            order by priority_rank, {{ reason_order }}, due_date
        ) as urgency
    from due

),

all_reasons as (

    select
        golden_id,
        field,
        count(*) as reason_count,
        {{ dbt.listagg('reason', "'; '", 'order by priority_rank, ' ~ reason_order ~ ', due_date') }} as all_reasons
    from due
    group by golden_id, field

),

final as (

    select
        r.golden_id,
        r.field,
        r.field_class,
        r.reason_code,
        r.reason,
        ar.reason_count,
        ar.all_reasons,
        r.source_record,
        r.last_confirmed_at_utc,
        r.due_date,
        {{ dbt.datediff('r.due_date', 'r.as_of_date', 'day') }} as days_overdue,
        r.priority_rank,
        case r.priority_rank when 1 then 'high' when 2 then 'medium' else 'low' end as priority,
        c.tier,
        r.as_of_utc
    from ranked as r
    inner join all_reasons as ar on ar.golden_id = r.golden_id and ar.field = r.field
    left join customers as c on c.golden_id = r.golden_id
    where r.urgency = 1

)

select * from final
