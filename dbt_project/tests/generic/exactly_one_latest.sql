{#-
    exactly_one_latest(key, flag='is_latest'): every value of `key` has exactly one row where
    `flag` is true. Fails with the keys that have none or several current versions.
-#}
{% test exactly_one_latest(model, key, flag='is_latest') %}

with

counts as (

    select
        {{ key }} as key_value,
        count(*) as versions,
        sum(case when {{ flag }} then 1 else 0 end) as latest_versions

    from {{ model }}
    group by {{ key }}

)

select * from counts
where latest_versions <> 1

{% endtest %}
