{#-
    not_null_columns(columns): none of the listed columns is NULL in any row. One query for a
    whole set of columns that must always be filled (the lineage columns, flags ...), instead of
    one not_null test each. Fails with the offending rows' columns.
-#}
{% test not_null_columns(model, columns) %}

select {{ columns | join(', ') }}
from {{ model }}
where
    {%- for column in columns %}
    {{ 'or ' if not loop.first }}{{ column }} is null
    {%- endfor %}

{% endtest %}
