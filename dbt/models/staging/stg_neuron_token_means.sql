select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(token_id as bigint) as token_id,
    cast(token as varchar) as token,
    cast(token_count as bigint) as token_count,
    cast(mean_activation as double) as mean_activation
from {{ source('lake', 'neuron_token_means') }}
where model <> '_none'
