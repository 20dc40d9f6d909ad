-- How many activation clusters are about one concept (purity above 0.5), against random
-- clusters of the same sizes, per clustering configuration.
select
    model,
    checkpoint,
    site,
    representation,
    k,
    refined,
    count(*) filter (where method = 'agglomerative') as n_clusters,
    count(*) filter (where method = 'agglomerative' and purity > 0.5) as n_pure_clusters,
    count(*) filter (where method = 'random' and purity > 0.5) as n_pure_random_clusters,
    avg(purity) filter (where method = 'agglomerative') as mean_purity,
    avg(purity) filter (where method = 'random') as mean_random_purity
from {{ ref('fct_cluster_concept_purity') }}
group by all
