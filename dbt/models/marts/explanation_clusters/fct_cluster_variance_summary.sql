-- Per clustering: mean, median and cluster-size weighted average (WAVG) of the clusters' sample
-- layer variances (clusters of one neuron have none: counted, left out), against the variance of
-- a uniform draw over L layers, (L^2 - 1) / 12, which the sample variance of a random cluster
-- estimates without bias; and how much of the layer index the clusters explain: eta squared =
-- 1 - within-cluster / total sum of squares (the between-cluster share, population form), with
-- the adjusted mutual information of cluster and layer computed by the clustering asset.
with variances as (
    select * from {{ ref('fct_cluster_layer_variance') }}
),

clusterings as (
    select * from {{ ref('stg_clusterings') }}
),

totals as (
    select model, checkpoint, method, filter_percentile, seed,
        var_pop(layer) as total_layer_variance,
        var_pop(layer) * count(*) as total_sum_squares
    from {{ ref('stg_explanation_clusters') }}
    where cluster_id >= 0
    group by all
),

summary as (
    select
        clusterings.model,
        clusterings.checkpoint,
        clusterings.method,
        clusterings.filter_percentile,
        clusterings.seed,
        clusterings.n_clusters,
        count(variances.cluster_id) as n_nonempty_clusters,
        count(*) filter (where variances.n_neurons = 1) as n_singleton_clusters,
        clusterings.n_layers,
        clusterings.n_neurons,
        clusterings.n_noise,
        avg(variances.layer_variance) as mean_variance,
        median(variances.layer_variance) as median_variance,
        sum(variances.n_neurons * variances.layer_variance)
            / sum(variances.n_neurons) filter (where variances.layer_variance is not null)
            as wavg_variance,
        sum(variances.layer_sum_squares) as within_sum_squares,
        (clusterings.n_layers * clusterings.n_layers - 1) / 12.0 as uniform_variance,
        clusterings.ami_layer
    from clusterings
    inner join variances using (model, checkpoint, method, filter_percentile, seed)
    group by all
)

select
    summary.* exclude (ami_layer, within_sum_squares),
    totals.total_layer_variance,
    case when totals.total_sum_squares > 0
        then 1 - summary.within_sum_squares / totals.total_sum_squares end as eta_squared,
    summary.ami_layer
from summary
inner join totals using (model, checkpoint, method, filter_percentile, seed)
