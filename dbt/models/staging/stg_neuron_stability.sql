select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(previous_checkpoint as varchar) as previous_checkpoint,
    cast(n_tokens as bigint) as n_tokens,
    cast(self_corr as double) as self_corr,
    cast(best_corr as double) as best_corr
from {{ source('lake', 'neuron_stability') }}
where model <> '_none'
