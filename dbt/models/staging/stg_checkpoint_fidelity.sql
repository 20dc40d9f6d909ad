select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(compared as varchar) as compared,
    cast(max_abs_diff as double) as max_abs_diff,
    cast(tolerance as double) as tolerance,
    cast(n_tokens as bigint) as n_tokens,
    cast(n_missing_weights as bigint) as n_missing_weights,
    cast(missing_weights as varchar) as missing_weights,
    cast(loss_usable as boolean) as loss_usable
from {{ source('lake', 'checkpoint_fidelity') }}
where model <> '_none'
