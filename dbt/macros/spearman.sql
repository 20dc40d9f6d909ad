{% macro average_rank(value, partition_by) %}
{#- The rank of `value` within its group, ties given their average rank (1-based), as Spearman's
    rho needs. -#}
(rank() over (partition by {{ partition_by | join(', ') }} order by {{ value }})
 + (count(*) over (partition by {{ partition_by | join(', ') }}, {{ value }}) - 1) / 2.0)
{% endmacro %}
