-- Causal test per cluster (Zhang et al., Sec. 5.5): the cluster's performance drop and each
-- random baseline's mean and sample standard deviation over its draws. A cluster beats a
-- baseline when its drop exceeds the baseline's mean by more than two standard deviations.
with runs as (
    select * from {{ ref('int_ablation_drops') }}
),

baselines as (
    select
        model, checkpoint, site, representation, k, refined, cluster_id,
        count(*) filter (where baseline = 'random') as n_repeats,
        avg(loss_drop_pct) filter (where baseline = 'random') as random_drop_pct,
        stddev_samp(loss_drop_pct) filter (where baseline = 'random') as random_drop_sd,
        avg(loss_drop_pct) filter (where baseline = 'random_layer') as random_layer_drop_pct,
        stddev_samp(loss_drop_pct) filter (where baseline = 'random_layer') as random_layer_drop_sd,
        avg(loss_drop_pct) filter (where baseline = 'random_position') as random_position_drop_pct,
        stddev_samp(loss_drop_pct) filter (where baseline = 'random_position') as random_position_drop_sd
    from runs
    where baseline <> 'cluster'
    group by all
)

select
    cluster.model,
    cluster.checkpoint,
    cluster.site,
    cluster.representation,
    cluster.k,
    cluster.refined,
    cluster.cluster_id,
    cluster.n_neurons,
    cluster.n_sentences,
    cluster.n_targets,
    cluster.loss_base,
    cluster.loss_drop_pct as cluster_drop_pct,
    baselines.n_repeats,
    baselines.random_drop_pct,
    baselines.random_drop_sd,
    baselines.random_layer_drop_pct,
    baselines.random_layer_drop_sd,
    baselines.random_position_drop_pct,
    baselines.random_position_drop_sd,
    cluster.loss_drop_pct > baselines.random_drop_pct + 2 * baselines.random_drop_sd as beats_random,
    cluster.loss_drop_pct > baselines.random_layer_drop_pct + 2 * baselines.random_layer_drop_sd
        as beats_random_layer,
    cluster.loss_drop_pct > baselines.random_position_drop_pct + 2 * baselines.random_position_drop_sd
        as beats_random_position
from runs as cluster
inner join baselines
    on cluster.model = baselines.model
    and cluster.checkpoint = baselines.checkpoint
    and cluster.site = baselines.site
    and cluster.representation = baselines.representation
    and cluster.k = baselines.k
    and cluster.refined = baselines.refined
    and cluster.cluster_id = baselines.cluster_id
where cluster.baseline = 'cluster'
