{% macro gini_over_clusters(counts, keys) %}
{#- Gini coefficient of the neuron counts x over all n clusters of each group of `keys`
    (Ben Yaakov et al., Sec. 3.1): G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)), computed from
    the ascending order statistics as G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n.
    `counts` has one row per cluster of each group (zeros included) with cluster_id, n_neurons. -#}
select
    {{ keys | join(', ') }},
    cast(sum(n_neurons) as bigint) as n_neurons,
    count(*) as n_clusters,
    2.0 * sum(ascending_rank * n_neurons) / (count(*) * sum(n_neurons))
        - (count(*) + 1.0) / count(*) as gini
from (
    select
        *,
        row_number() over (
            partition by {{ keys | join(', ') }} order by n_neurons, cluster_id
        ) as ascending_rank
    from {{ counts }}
)
group by {{ keys | join(', ') }}
{% endmacro %}
