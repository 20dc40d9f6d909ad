select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(layer as bigint) as layer,
    cast(matrix as varchar) as matrix,
    cast(similarity as varchar) as similarity,
    cast(k as bigint) as k,
    cast(enmeshment as double) as enmeshment,
    cast(baseline_enmeshment as double) as baseline_enmeshment,
    cast(baseline_sd as double) as baseline_sd,
    cast(baseline_draws as bigint) as baseline_draws
from {{ source('lake', 'enmeshment') }}
where model <> '_none'
