select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(representation as varchar) as representation,
    cast(k as bigint) as k,
    cast(refined as boolean) as refined,
    cast(method as varchar) as method,
    cast(cluster_id as bigint) as cluster_id,
    cast(n_neurons as bigint) as n_neurons,
    cast(max_distance as double) as max_distance,
    cast(mean_distance as double) as mean_distance
from {{ source('lake', 'activation_cluster_distances') }}
where model <> '_none'
