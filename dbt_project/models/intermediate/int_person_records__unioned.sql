-- The current version of every person-bearing source record, in one column layout.
-- Columns a source does not have are NULL; nothing is standardised yet.
-- The person feeds, their staging models and how their columns map onto this layout are declared
-- once, in customer_mdm/plan.py (Feed.person); the pipeline passes them as dbt vars
-- (customer_mdm.plan.dbt_vars), so a new person feed needs no edit here.

{%- set feeds = var('mdm_person_feeds', none) %}
{%- set layout = var('mdm_person_columns', none) %}
{%- if feeds is none or layout is none %}
    {{ exceptions.raise_compiler_error(
        "int_person_records__unioned needs the vars mdm_person_feeds and mdm_person_columns "
        ~ "(customer_mdm.plan.dbt_vars): run dbt through `mdm dbt`") }}
{%- endif %}
{%- set null_of = {
    'text': 'cast(null as ' ~ dbt.type_string() ~ ')',
    'timestamp': 'cast(null as ' ~ dbt.type_timestamp() ~ ')',
} %}

with

{% for feed in feeds %}
{{ feed.model }} as (

    select * from {{ ref(feed.model) }} where is_latest

),

{% endfor -%}

unioned as (

    {%- for feed in feeds %}

    select
        record_key, source, source_id,
        {%- for column, type in layout %}
        {{ feed.columns.get(column, null_of[type]) }} as {{ column }},
        {%- endfor %}
        _source_file, _batch_id, _row_number, _ingested_at
    from {{ feed.model }}
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select * from unioned

)

select * from final
