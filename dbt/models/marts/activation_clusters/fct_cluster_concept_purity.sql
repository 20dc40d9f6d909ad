-- Ground truth for activation clusters: each top-activating token takes the semantic class it
-- occurs in most often in the synthetic corpus; a cluster's concept is the class most common
-- among its top tokens (ties: alphabetical) and its purity that class's share of the top tokens.
with top_tokens as (
    select
        tokens.model, tokens.checkpoint, tokens.site, tokens.representation, tokens.k,
        tokens.refined, tokens.method, tokens.cluster_id, tokens.token_id,
        classes.semantic_class
    from {{ ref('stg_activation_cluster_tokens') }} as tokens
    left join {{ ref('int_token_majority_class') }} as classes
        on tokens.model = classes.model
        and tokens.checkpoint = classes.checkpoint
        and tokens.token_id = classes.token_id
),

class_counts as (
    select
        model, checkpoint, site, representation, k, refined, method, cluster_id, semantic_class,
        count(*) as n_tokens,
        sum(count(*)) over (
            partition by model, checkpoint, site, representation, k, refined, method, cluster_id
        ) as n_top_tokens
    from top_tokens
    group by model, checkpoint, site, representation, k, refined, method, cluster_id, semantic_class
)

select
    model,
    checkpoint,
    site,
    representation,
    k,
    refined,
    method,
    cluster_id,
    n_top_tokens,
    semantic_class as top_class,
    n_tokens as top_class_tokens,
    n_tokens / n_top_tokens as purity
from class_counts
where semantic_class is not null
qualify row_number() over (
    partition by model, checkpoint, site, representation, k, refined, method, cluster_id
    order by n_tokens desc, semantic_class
) = 1
