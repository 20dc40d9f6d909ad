select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(representation as varchar) as representation,
    cast(k as bigint) as k,
    cast(refined as boolean) as refined,
    cast(method as varchar) as method,
    cast(cluster_id as bigint) as cluster_id,
    cast(rank as bigint) as rank,
    cast(token_id as bigint) as token_id,
    cast(token as varchar) as token,
    cast(activation as double) as activation
from {{ source('lake', 'activation_cluster_tokens') }}
where model <> '_none'
