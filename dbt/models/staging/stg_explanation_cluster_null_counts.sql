select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(method as varchar) as method,
    cast(filter_percentile as bigint) as filter_percentile,
    cast(seed as bigint) as seed,
    cast(shuffle as bigint) as shuffle,
    cast(layer as bigint) as layer,
    cast(cluster_id as bigint) as cluster_id,
    cast(n_neurons as bigint) as n_neurons
from {{ source('lake', 'explanation_cluster_null_counts') }}
where model <> '_none'
