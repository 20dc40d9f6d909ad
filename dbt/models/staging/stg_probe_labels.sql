select
    cast(model as varchar) as model,
    cast(sentence_id as bigint) as sentence_id,
    cast(word_index as bigint) as word_index,
    cast(word as varchar) as word,
    cast(split as varchar) as split,
    cast(task as varchar) as task,
    cast(label as varchar) as label
from {{ source('lake', 'probe_labels') }}
where model <> '_none'
