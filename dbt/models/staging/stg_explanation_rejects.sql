select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(path as varchar) as path,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(problem as varchar) as problem,
    cast(detail as varchar) as detail
from {{ source('lake', 'explanation_rejects') }}
where model <> '_none'
