-- Gini coefficient of each layer's neuron counts over all clusters (Ben Yaakov et al., Sec. 3.1):
-- G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)), computed from the ascending order statistics
-- as G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n, with n = n_clusters (empty clusters count as 0).
with counts as (
    select
        *,
        row_number() over (
            partition by model, checkpoint, method, filter_percentile, seed, layer
            order by n_neurons, cluster_id
        ) as ascending_rank
    from {{ ref('int_layer_cluster_counts') }}
)

select
    model,
    checkpoint,
    method,
    filter_percentile,
    seed,
    layer,
    cast(sum(n_neurons) as bigint) as n_neurons,
    any_value(n_clusters) as n_clusters,
    2.0 * sum(ascending_rank * n_neurons) / (count(*) * sum(n_neurons))
        - (count(*) + 1.0) / count(*) as gini
from counts
group by model, checkpoint, method, filter_percentile, seed, layer
