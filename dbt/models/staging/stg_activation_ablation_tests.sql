select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(representation as varchar) as representation,
    cast(k as bigint) as k,
    cast(refined as boolean) as refined,
    cast(cluster_id as bigint) as cluster_id,
    cast(baseline as varchar) as baseline,
    cast(n_draws as bigint) as n_draws,
    cast(p_value as double) as p_value
from {{ source('lake', 'activation_ablation_tests') }}
where model <> '_none'
