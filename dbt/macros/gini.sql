{% macro gini_over_clusters(counts, keys, held='count(*)') %}
{#- Gini coefficient of the neuron counts x over all n clusters of each group of `keys`
    (Ben Yaakov et al., Sec. 3.1): G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)), computed from
    the ascending order statistics as G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n.
    `counts` has a row (cluster_id, n_neurons) for each cluster that holds neurons (rows with
    n_neurons = 0 are allowed) and the group's n_clusters = n. With m rows, the n - m clusters
    without a row hold none: they take the first n - m ranks and add nothing but that offset
    (n_clusters - n_given below). Equal counts are
    interchangeable in the sum, so it runs over each group's histogram of counts, not over a
    sort of every row: the f clusters holding v neurons, after c clusters with fewer, take
    ranks (n - m) + c + 1 .. (n - m) + c + f, adding v f ((n - m) + c + (f + 1) / 2).
    `held` counts the clusters of a row group with equal n_neurons: count(*) for one row per
    cluster, sum(n_clusters_holding) where `counts` is already that histogram (the null). -#}
select
    {{ keys | join(', ') }},
    cast(sum(n_neurons * n_held) as bigint) as n_neurons,
    any_value(n_clusters) as n_clusters,
    2.0 * sum(n_neurons * n_held * (n_clusters - n_given + n_below + (n_held + 1) / 2.0))
        / (any_value(n_clusters) * sum(n_neurons * n_held))
        - (any_value(n_clusters) + 1.0) / any_value(n_clusters) as gini
from (
    select
        *,
        sum(n_held) over (partition by {{ keys | join(', ') }}) as n_given,
        coalesce(sum(n_held) over (
            partition by {{ keys | join(', ') }} order by n_neurons
            rows between unbounded preceding and 1 preceding), 0) as n_below
    from (
        select {{ keys | join(', ') }}, n_neurons, any_value(n_clusters) as n_clusters,
            {{ held }} as n_held
        from {{ counts }}
        group by all
    )
)
group by {{ keys | join(', ') }}
{% endmacro %}
