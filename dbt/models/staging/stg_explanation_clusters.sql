select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(method as varchar) as method,
    cast(filter_percentile as bigint) as filter_percentile,
    cast(seed as bigint) as seed,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(cluster_id as bigint) as cluster_id
from {{ source('lake', 'explanation_clusters') }}
where model <> '_none'
