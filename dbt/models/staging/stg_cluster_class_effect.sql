select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(layer as bigint) as layer,
    cast(k as bigint) as k,
    cast(cluster_id as bigint) as cluster_id,
    cast(semantic_class as varchar) as semantic_class,
    cast(n_neurons as bigint) as n_neurons,
    cast(n_sentences as bigint) as n_sentences,
    cast(n_targets as bigint) as n_targets,
    cast(loss_base as double) as loss_base,
    cast(loss_off as double) as loss_off,
    cast(loss_on as double) as loss_on
from {{ source('lake', 'cluster_class_effect') }}
where model <> '_none'
