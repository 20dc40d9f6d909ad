-- Table 3 of Zhang et al.: per clustering configuration, the mean performance drop of the
-- clusters and of each random baseline, and the share of clusters that hurt significantly more
-- than each baseline (Benjamini-Hochberg at 5 % across the configuration's clusters).
select
    model,
    checkpoint,
    site,
    representation,
    k,
    refined,
    ablation,
    count(*) as n_clusters_ablated,
    avg(n_neurons) as mean_n_neurons,
    avg(cluster_drop_pct) as cluster_drop_pct,
    avg(random_drop_pct) as random_drop_pct,
    avg(random_layer_drop_pct) as random_layer_drop_pct,
    avg(random_position_drop_pct) as random_position_drop_pct,
    avg(significant_random::int) as share_significant_random,
    avg(significant_random_layer::int) as share_significant_random_layer,
    avg(significant_random_position::int) as share_significant_random_position
from {{ ref('fct_ablation_summary') }}
group by all
