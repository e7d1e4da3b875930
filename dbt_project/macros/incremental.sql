{#-
    Incremental builds (portable: DuckDB and PostgreSQL).

    Every layer is an incremental model whose SQL says which rows to recompute when it runs
    incrementally (is_incremental()); the strategy `replace_keys` below then deletes every row
    of the recomputed keys and inserts the new ones. `mdm run --full`, a changed build
    fingerprint (customer_mdm.dbt.build_fingerprint) or a first build run dbt with
    --full-refresh, which rebuilds the tables from scratch with the same SQL.

    Watermarks:
      * a model's own: the newest `_ingested_at` it holds (`ingested_watermark()`);
      * a layer's: `ops.dbt_window.since`, written by the pipeline before it runs the layer
        (the newest `_ingested_at` of the layer's inputs at its previous successful build;
        NULL on a full refresh). The staging tests are scoped with it (dbt_project.yml) and the
        golden models read it (`layer_since('golden')`). A static SQL string: no dbt var changes
        between runs, so dbt's partial parsing keeps working.
-#}


{#- The timestamp that stands for "no watermark": everything is newer. -#}
{% macro _epoch() -%}
    cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}


{#- ingested_watermark(column='_ingested_at'): the newest value of `column` in this model's
    existing table (only valid inside is_incremental()). -#}
{% macro ingested_watermark(column='_ingested_at') -%}
    coalesce((select max({{ column }}) from {{ this }}), {{ customer_mdm._epoch() }})
{%- endmacro %}


{#- layer_since(layer): ops.dbt_window.since of a layer (staging, build, golden): the inputs'
    newest _ingested_at at the layer's previous successful build; the epoch when there is none. -#}
{% macro layer_since(layer) -%}
    coalesce(
        (select max(since) from {{ source('ops', 'dbt_window') }} where layer = '{{ layer }}'),
        {{ customer_mdm._epoch() }}
    )
{%- endmacro %}


{#- changed_keys_source(relation, key_expr): the rows of `relation` (a raw landing table) to
    (re)stage. Full build: every row. Incremental: every row, old and new, of the keys that have a
    row ingested after this model's watermark, so that the versions of those keys can be ranked
    again (is_latest). `key_expr` is the model's cleaned key as an expression over the raw columns
    (two raw spellings, ' C001' and 'C001', clean to one key); a NULL key is a key too. -#}
{% macro changed_keys_source(relation, key_expr) -%}
    select * from {{ relation }}
    {%- if is_incremental() %}
    where coalesce({{ key_expr }}, '') in (
        select coalesce({{ key_expr }}, '')
        from {{ relation }}
        where _ingested_at > {{ customer_mdm.ingested_watermark() }}
    )
    {%- endif %}
{%- endmacro %}


{#-
    Incremental strategy `replace_keys` (config incremental_strategy='replace_keys'):
        delete from the target every row whose unique_key (one column or a list) is among the
        keys to replace, then insert the new rows.
    The keys to replace are those of the new rows, or, with config replace_keys_from='<model>',
    the keys listed in that model (same column names): a key listed there with no new row is
    removed. A NULL key part matches NULL, as '' would (dbt's delete+insert never matches a NULL
    key, so a re-staged NULL-key row would be duplicated, and it cannot remove a key).
    The first delete is a plain equality semi-join, so PostgreSQL can use an index on the key
    (postgres_indexes); the second only runs when a key to replace has a NULL part.
-#}
{% macro get_incremental_replace_keys_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'replace_keys' needs a unique_key (" ~ this ~ ")") }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set keys_from = config.get('replace_keys_from') -%}
    {%- set key_relation = ref(keys_from) if keys_from else temp -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as dbt_target
    where exists (
        select 1
        from {{ key_relation }} as dbt_keys
        where
            {%- for key in keys %}
            {{ 'and ' if not loop.first }}dbt_keys.{{ key }} = dbt_target.{{ key }}
            {%- endfor %}
    );

    delete from {{ target }} as dbt_target
    where
        exists (
            select 1
            from {{ key_relation }} as dbt_keys
            where
                {%- for key in keys %}
                {{ 'or ' if not loop.first }}dbt_keys.{{ key }} is null
                {%- endfor %}
        )
        and exists (
            select 1
            from {{ key_relation }} as dbt_keys
            where
                {%- for key in keys %}
                {{ 'and ' if not loop.first }}coalesce(dbt_keys.{{ key }}, '') = coalesce(dbt_target.{{ key }}, '')
                {%- endfor %}
        );

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ temp }}
{%- endmacro %}


{#- postgres_indexes(column_lists): the `indexes` config for PostgreSQL (dbt creates them when it
    creates the table), none on DuckDB, whose zone maps serve the same filters and whose ART
    indexes would slow every insert and delete. E.g. postgres_indexes([['source_id'], ['_ingested_at']]). -#}
{% macro postgres_indexes(column_lists) -%}
    {%- set indexes = [] -%}
    {%- if target.type == 'postgres' -%}
        {%- for columns in column_lists -%}
            {%- do indexes.append({'columns': columns}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(indexes) }}
{%- endmacro %}


{#- existing_model_relation(name): the relation of another model of this project as it exists in
    the warehouse now, or none. For reading a model's previous state without a ref (a ref would
    make a cycle); only at execution time. -#}
{% macro existing_model_relation(name) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == name
        and node.package_name == project_name -%}
        {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
