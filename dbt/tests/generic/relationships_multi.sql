{% test relationships_multi(model, columns, to) %}
{#- Fails for every row whose combination of `columns` has no matching row in `to`. -#}
select child.*
from {{ model }} as child
left join {{ to }} as parent
    on {% for c in columns %}child.{{ c }} = parent.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
where parent.{{ columns[0] }} is null
{% endtest %}
