select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(method as varchar) as method,
    cast(filter_percentile as bigint) as filter_percentile,
    cast(seed as bigint) as seed,
    cast(cluster_id as bigint) as cluster_id,
    cast(topic_words as varchar[]) as topic_words,
    cast(representative_explanations as varchar[]) as representative_explanations
from {{ source('lake', 'cluster_topics') }}
where model <> '_none'
