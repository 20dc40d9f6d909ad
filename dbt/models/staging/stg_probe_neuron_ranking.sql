select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(task as varchar) as task,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(rank as bigint) as rank,
    cast(mass_threshold as double) as mass_threshold,
    cast(weight_mass as double) as weight_mass
from {{ source('lake', 'probe_neuron_ranking') }}
where model <> '_none'
