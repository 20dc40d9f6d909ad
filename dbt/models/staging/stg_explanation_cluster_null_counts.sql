select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(method as varchar) as method,
    cast(filter_percentile as bigint) as filter_percentile,
    cast(seed as bigint) as seed,
    cast(shuffle as bigint) as shuffle,
    cast(layer as bigint) as layer,
    cast(n_neurons as bigint) as n_neurons,
    cast(n_clusters_holding as bigint) as n_clusters_holding
from {{ source('lake', 'explanation_cluster_null_counts') }}
where model <> '_none'
