-- "Now" for the governance models: one row. Due dates, staleness, recency and the lifecycle
-- stages are all measured against it, so a rebuild with the same data and the same as_of gives
-- the same worklist and segments.
--   * dbt var `as_of` ('2026-11-01' or '2026-11-01 12:00:00', UTC) when it is set;
--   * else the latest order time in fct_orders (the data's own clock: a replayed or late
--     landing zone is judged as of its own last day, and tests are deterministic);
--   * else, with no orders at all, the time this dbt invocation started (UTC).
-- If the order feed stops, as_of stops with it: the feed's dbt source freshness catches that.

{%- set as_of = var('as_of', none) %}
{%- if as_of is not none and not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$', as_of | string) %}
    {{ exceptions.raise_compiler_error("var as_of must look like 2026-11-01 or 2026-11-01 12:00:00 (UTC), got " ~ as_of) }}
{%- endif %}
{%- set run_started = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "' as " ~ dbt.type_timestamp() ~ ")" %}

with

orders as (

    select max(ordered_at_utc) as max_ordered_at_utc from {{ ref('fct_orders') }}

),

final as (

    select
        {%- if as_of is not none %}
        cast('{{ as_of }}' as {{ dbt.type_timestamp() }}) as as_of_utc,
        'var' as as_of_basis,
        {%- else %}
        coalesce(max_ordered_at_utc, {{ run_started }}) as as_of_utc,
        case when max_ordered_at_utc is null then 'run_started_at' else 'max_order_time' end as as_of_basis,
        {%- endif %}
        {{ run_started }} as built_at_utc
    from orders

)

select * from final
