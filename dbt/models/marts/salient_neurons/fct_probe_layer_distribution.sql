-- Where the minimal neuron subset of each task lives: its neurons per layer, every layer listed
-- (Durrani et al., Sec. 5.1, Fig. 3).
with layers as (
    select model, checkpoint, site, task, layer, count(*) as layer_neurons
    from {{ ref('stg_probe_neuron_ranking') }}
    group by all
),

minimal as (
    select model, checkpoint, site, task, layer, count(*) as n_neurons
    from {{ ref('int_probe_minimal_neurons') }}
    group by all
)

select
    layers.model,
    layers.checkpoint,
    layers.site,
    layers.task,
    layers.layer,
    layers.layer_neurons,
    coalesce(minimal.n_neurons, 0) as n_neurons,
    coalesce(minimal.n_neurons, 0) / sum(coalesce(minimal.n_neurons, 0)) over (
        partition by layers.model, layers.checkpoint, layers.site, layers.task
    ) as share_of_subset,
    coalesce(minimal.n_neurons, 0) / layers.layer_neurons as share_of_layer
from layers
left join minimal using (model, checkpoint, site, task, layer)
