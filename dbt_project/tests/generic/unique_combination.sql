{#-
    unique_combination(columns): no two rows share the same values in all the listed columns.
    Fails with the duplicated combinations and how often they occur.
-#}
{% test unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
