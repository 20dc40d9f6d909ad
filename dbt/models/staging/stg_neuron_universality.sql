select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(other_model as varchar) as other_model,
    cast(n_tokens as bigint) as n_tokens,
    cast(best_corr as double) as best_corr,
    cast(best_layer as bigint) as best_layer,
    cast(best_neuron as bigint) as best_neuron,
    cast(baseline_corr as double) as baseline_corr,
    cast(threshold as double) as threshold
from {{ source('lake', 'neuron_universality') }}
where model <> '_none'
