select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(task as varchar) as task,
    cast(lambda1 as double) as lambda1,
    cast(lambda2 as double) as lambda2,
    cast(top_percent as double) as top_percent,
    cast(alpha as double) as alpha,
    cast(beta as double) as beta,
    cast(accuracy_top as double) as accuracy_top,
    cast(accuracy_bottom as double) as accuracy_bottom,
    cast(accuracy_noreg as double) as accuracy_noreg,
    cast(accuracy_current as double) as accuracy_current,
    cast(score as double) as score,
    cast(selected as boolean) as selected
from {{ source('lake', 'probe_grid') }}
where model <> '_none'
