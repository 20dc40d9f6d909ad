select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(relation as varchar) as relation,
    cast(config_a as varchar) as config_a,
    cast(config_b as varchar) as config_b,
    cast(layer as bigint) as layer,
    cast(n_neurons as bigint) as n_neurons,
    cast(ami as double) as ami,
    cast(null_mean as double) as null_mean,
    cast(null_sd as double) as null_sd,
    cast(p_value as double) as p_value,
    cast(permutations as bigint) as permutations
from {{ source('lake', 'study_agreement') }}
where model <> '_none'
