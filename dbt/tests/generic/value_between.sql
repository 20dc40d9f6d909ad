{% test value_between(model, column_name, min_value=none, max_value=none, min_exclusive=false) %}
{#- Fails for every non-null value outside [min_value, max_value] (or (min_value, ...] when min_exclusive). -#}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and (
    false
    {% if min_value is not none %} or {{ column_name }} {{ '<=' if min_exclusive else '<' }} {{ min_value }} {% endif %}
    {% if max_value is not none %} or {{ column_name }} > {{ max_value }} {% endif %}
)
{% endtest %}
