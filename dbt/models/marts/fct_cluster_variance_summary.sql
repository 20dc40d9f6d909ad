-- Per clustering: mean, median and cluster-size weighted average (WAVG) of the clusters' layer
-- variances, against the variance of a uniform draw over L layers, (L^2 - 1) / 12.
with variances as (
    select * from {{ ref('fct_cluster_layer_variance') }}
),

clusterings as (
    select * from {{ ref('stg_clusterings') }}
)

select
    clusterings.model,
    clusterings.checkpoint,
    clusterings.method,
    clusterings.filter_percentile,
    clusterings.seed,
    clusterings.n_clusters,
    count(variances.cluster_id) as n_nonempty_clusters,
    clusterings.n_layers,
    avg(variances.layer_variance) as mean_variance,
    median(variances.layer_variance) as median_variance,
    sum(variances.n_neurons * variances.layer_variance) / sum(variances.n_neurons) as wavg_variance,
    (clusterings.n_layers * clusterings.n_layers - 1) / 12.0 as uniform_variance
from clusterings
inner join variances using (model, checkpoint, method, filter_percentile, seed)
group by all
