select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(layer as bigint) as layer,
    cast(semantic_class as varchar) as semantic_class,
    cast(n_weights as bigint) as n_weights,
    cast(fraction_left as double) as fraction_left,
    cast(loss_base as double) as loss_base,
    cast(loss_pruned as double) as loss_pruned,
    cast(tolerance as double) as tolerance
from {{ source('lake', 'effective_circuit_size') }}
where model <> '_none'
