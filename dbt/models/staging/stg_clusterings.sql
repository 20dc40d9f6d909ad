select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(method as varchar) as method,
    cast(filter_percentile as bigint) as filter_percentile,
    cast(seed as bigint) as seed,
    cast(n_clusters as bigint) as n_clusters,
    cast(n_layers as bigint) as n_layers,
    cast(n_neurons as bigint) as n_neurons,
    cast(n_noise as bigint) as n_noise,
    cast(ami_layer as double) as ami_layer
from {{ source('lake', 'clusterings') }}
where model <> '_none'
