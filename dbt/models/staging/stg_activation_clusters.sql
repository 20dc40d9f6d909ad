select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(representation as varchar) as representation,
    cast(k as bigint) as k,
    cast(refined as boolean) as refined,
    cast(method as varchar) as method,
    cast(cluster_id as bigint) as cluster_id,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron
from {{ source('lake', 'activation_clusters') }}
where model <> '_none'
