select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(task as varchar) as task,
    cast(label as varchar) as label,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(label_rank as bigint) as label_rank,
    cast(weight as double) as weight,
    cast(mass_share as double) as mass_share,
    cast(mass_before as double) as mass_before
from {{ source('lake', 'probe_label_ranking') }}
where model <> '_none'
