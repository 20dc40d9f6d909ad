-- Non-empty clusters of each clustering ranked by size (1 = largest; ties by cluster_id),
-- with their share of the clustering's neurons.
select
    model,
    checkpoint,
    method,
    filter_percentile,
    seed,
    row_number() over (
        partition by model, checkpoint, method, filter_percentile, seed
        order by n_neurons desc, cluster_id
    ) as size_rank,
    cluster_id,
    n_neurons,
    n_neurons / sum(n_neurons) over (
        partition by model, checkpoint, method, filter_percentile, seed
    ) as share
from {{ ref('fct_cluster_layer_variance') }}
