select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(rank as bigint) as rank,
    cast(activation as double) as activation,
    cast(sentence_id as bigint) as sentence_id,
    cast(position as bigint) as position,
    cast(token as varchar) as token,
    cast(context as varchar) as context
from {{ source('lake', 'neuron_top_contexts') }}
where model <> '_none'
