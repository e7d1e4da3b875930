{#-
    exactly_one_latest(key, flag='is_latest', of=none): every value of `key` has exactly one row
    where `flag` is true. Fails with the keys that have none or several current versions.

    `of` (a ref, like relationships' `to`): count the versions in that whole relation, for the
    keys found in the tested model. With a `where` config (the staging tests only look at the rows
    ingested since the previous build) the tested rows are a slice of the model, and the keys with
    a new row must still have exactly one latest version among all their rows, old and new.
-#}
{% test exactly_one_latest(model, key, flag='is_latest', of=none) %}

with

{%- if of is not none %}

tested_keys as (

    select distinct coalesce({{ key }}, '') as key_value
    from {{ model }}

),
{%- endif %}

counts as (

    select
        {{ key }} as key_value,
        count(*) as versions,
        sum(case when {{ flag }} then 1 else 0 end) as latest_versions

    from {{ of if of is not none else model }}
    {%- if of is not none %}
    where coalesce({{ key }}, '') in (select key_value from tested_keys)
    {%- endif %}
    group by {{ key }}

)

select * from counts
where latest_versions <> 1

{% endtest %}
