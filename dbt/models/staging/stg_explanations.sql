select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(explanation as varchar) as explanation,
    cast(case when isnan(score) then null else score end as double) as score
from {{ source('lake', 'explanations') }}
where model <> '_none'
