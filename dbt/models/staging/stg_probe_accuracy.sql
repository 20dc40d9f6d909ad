select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(task as varchar) as task,
    cast(labels as varchar) as labels,
    cast(selection as varchar) as selection,
    cast(mode as varchar) as mode,
    cast(percent as double) as percent,
    cast(n_neurons as bigint) as n_neurons,
    cast(seed as bigint) as seed,
    cast(accuracy as double) as accuracy
from {{ source('lake', 'probe_accuracy') }}
where model <> '_none'
