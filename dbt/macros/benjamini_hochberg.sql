{% macro benjamini_hochberg(relation, partition_by, order_tie) %}
{#- Every row of `relation` with its Benjamini-Hochberg adjusted p-value `q_value` over the rows
    of its group (`partition_by`): q_(i) = min over j >= i of p_(j) m / j, with p ascending
    (ties by `order_tie`) and m the group's non-null p-values; null where p_value is null.
    Rejecting q <= alpha holds the false discovery rate of the group at alpha (BH 1995). -#}
select
    * exclude (bh_m, bh_rank),
    case when p_value is not null then least(1.0, min(p_value * bh_m / bh_rank) over (
        partition by {{ partition_by | join(', ') }}
        order by bh_rank desc rows between unbounded preceding and current row)) end as q_value
from (
    select
        *,
        count(p_value) over (partition by {{ partition_by | join(', ') }}) as bh_m,
        row_number() over (partition by {{ partition_by | join(', ') }}
                           order by p_value nulls last, {{ order_tie }}) as bh_rank
    from {{ relation }}
)
{% endmacro %}
