-- Persons whose source records disagree on a field that should agree, for data stewards:
-- one row per (golden_id, field, value) of every conflicting (golden_id, field), with the
-- records and sources that carry each value and whether it is the golden value.
--
-- Compared fields and values:
--   birth_date  full birth dates (birth_precision 'full'; a store card's month-day is partial)
--   gender      M / F
--   name        name_std of Han-script names without a name_issue: a bare surname with an
--               honorific (王先生), a pinyin handle or a Latin transliteration (Meng Yanhan for
--               孟艳涵) is not a disagreement; homophones typed by the call centre (王伟/王玮) are.

{%- set text = dbt.type_string() %}

with

records as (

    select
        source,
        source || ':' || source_id as record_id,
        name_std,
        name_script,
        name_issue,
        gender,
        birth_date,
        birth_precision
    from {{ ref('int_customer_records') }}

),

xref as (

    select record_id, golden_id from {{ ref('customer_xref') }}

),

customers as (

    select golden_id, name, gender, cast(birth_date as {{ text }}) as birth_date from {{ ref('dim_customer') }}

),

field_values as (

    select x.golden_id, 'birth_date' as field, cast(r.birth_date as {{ text }}) as value, r.source, r.record_id
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.birth_precision = 'full' and r.birth_date is not null

    union all

    select x.golden_id, 'gender', r.gender, r.source, r.record_id
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.gender is not null

    union all

    select x.golden_id, 'name', r.name_std, r.source, r.record_id
    from records as r
    inner join xref as x on x.record_id = r.record_id
    where r.name_std is not null and r.name_script = 'han' and r.name_issue is null

),

conflicts as (

    select
        golden_id,
        field,
        count(distinct value) as distinct_values,
        count(*) as records_with_field
    from field_values
    group by golden_id, field
    having count(distinct value) > 1

),

per_value as (

    select
        v.golden_id,
        v.field,
        v.value,
        count(*) as value_record_count,
        {{ dbt.listagg('v.record_id', "', '", 'order by v.record_id') }} as records,
        {{ dbt.listagg('distinct v.source', "', '", 'order by v.source') }} as sources
    from field_values as v
    inner join conflicts as c on c.golden_id = v.golden_id and c.field = v.field
    group by v.golden_id, v.field, v.value

),

final as (

    select
        p.golden_id,
        p.field,
        c.distinct_values,
        c.records_with_field,
        p.value,
        p.value_record_count,
        p.records,
        p.sources,
        coalesce(
            p.value = case p.field
                when 'name' then g.name
                when 'gender' then g.gender
                when 'birth_date' then g.birth_date
            end,
            false
        ) as is_golden_value
    from per_value as p
    inner join conflicts as c on c.golden_id = p.golden_id and c.field = p.field
    left join customers as g on g.golden_id = p.golden_id

)

select * from final
