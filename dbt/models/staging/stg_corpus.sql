select
    cast(model as varchar) as model,
    cast(sentence_id as bigint) as sentence_id,
    cast(split as varchar) as split,
    cast(word_index as bigint) as word_index,
    cast(word as varchar) as word,
    cast(pos as varchar) as pos,
    cast(semantic_class as varchar) as semantic_class,
    cast(suffix as varchar) as suffix,
    cast(position as varchar) as position
from {{ source('lake', 'corpus') }}
where model <> '_none'
