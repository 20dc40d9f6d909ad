select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(token_id as bigint) as token_id,
    cast(semantic_class as varchar) as semantic_class,
    cast(n_occurrences as bigint) as n_occurrences
from {{ source('lake', 'token_classes') }}
where model <> '_none'
