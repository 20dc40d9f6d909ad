-- The semantic class each token id occurs in most often (ties: the alphabetically first class).
select
    model,
    checkpoint,
    token_id,
    semantic_class,
    n_occurrences,
    n_occurrences / sum(n_occurrences) over (partition by model, checkpoint, token_id) as class_share
from {{ ref('stg_token_classes') }}
qualify row_number() over (
    partition by model, checkpoint, token_id order by n_occurrences desc, semantic_class
) = 1
