select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(representation as varchar) as representation,
    cast(k as bigint) as k,
    cast(refined as boolean) as refined,
    cast(cluster_id as bigint) as cluster_id,
    cast(ablation as varchar) as ablation,
    cast(baseline as varchar) as baseline,
    cast(repeat as bigint) as repeat,
    cast(n_neurons as bigint) as n_neurons,
    cast(n_sentences as bigint) as n_sentences,
    cast(n_targets as bigint) as n_targets,
    cast(loss_base as double) as loss_base,
    cast(loss_ablated as double) as loss_ablated
from {{ source('lake', 'activation_ablations') }}
where model <> '_none'
