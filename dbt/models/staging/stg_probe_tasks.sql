select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(task as varchar) as task,
    cast(n_labels as bigint) as n_labels,
    cast(n_neurons as bigint) as n_neurons,
    cast(n_train as bigint) as n_train,
    cast(n_dev as bigint) as n_dev,
    cast(n_test as bigint) as n_test,
    cast(majority_accuracy as double) as majority_accuracy,
    cast(lambda1 as double) as lambda1,
    cast(lambda2 as double) as lambda2,
    cast(oracle_dev_accuracy as double) as oracle_dev_accuracy,
    cast(delta as double) as delta,
    cast(top_percent as double) as top_percent,
    cast(minimal_percent as double) as minimal_percent,
    cast(minimal_n_neurons as bigint) as minimal_n_neurons,
    cast(minimal_dev_accuracy as double) as minimal_dev_accuracy,
    cast(minimal_mass_threshold as double) as minimal_mass_threshold
from {{ source('lake', 'probe_tasks') }}
where model <> '_none'
