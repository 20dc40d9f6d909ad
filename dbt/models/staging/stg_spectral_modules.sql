select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(layer as bigint) as layer,
    cast(matrix as varchar) as matrix,
    cast(similarity as varchar) as similarity,
    cast(k as bigint) as k,
    cast(neuron as bigint) as neuron,
    cast(module as bigint) as module
from {{ source('lake', 'spectral_modules') }}
where model <> '_none'
