-- Causal test per cluster (Zhang et al., Sec. 5.5): the cluster's performance drop and each
-- random baseline's mean and sample standard deviation over its draws; the one-sided p-value that
-- the cluster hurts more than as many random neurons (H0: the cluster is one more draw of the
-- baseline; Student's prediction test, from the ablation asset) and its Benjamini-Hochberg
-- q-value over the clusters of the configuration: `significant_<baseline>` (q <= 0.05) holds the
-- false discovery rate at 5 % per configuration and baseline.
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
),

adjusted as (
    {{ benjamini_hochberg(ref('stg_activation_ablation_tests'),
        ['model', 'checkpoint', 'site', 'representation', 'k', 'refined', 'baseline'],
        'cluster_id') }}
),

tests as (
    select
        model, checkpoint, site, representation, k, refined, cluster_id,
        max(p_value) filter (where baseline = 'random') as random_p_value,
        max(q_value) filter (where baseline = 'random') as random_q_value,
        max(p_value) filter (where baseline = 'random_layer') as random_layer_p_value,
        max(q_value) filter (where baseline = 'random_layer') as random_layer_q_value,
        max(p_value) filter (where baseline = 'random_position') as random_position_p_value,
        max(q_value) filter (where baseline = 'random_position') as random_position_q_value
    from adjusted
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
    cluster.ablation,
    cluster.n_neurons,
    cluster.n_sentences,
    cluster.n_targets,
    cluster.loss_base,
    cluster.loss_drop_pct as cluster_drop_pct,
    baselines.* exclude (model, checkpoint, site, representation, k, refined, cluster_id),
    tests.* exclude (model, checkpoint, site, representation, k, refined, cluster_id),
    tests.random_q_value <= 0.05 as significant_random,
    tests.random_layer_q_value <= 0.05 as significant_random_layer,
    tests.random_position_q_value <= 0.05 as significant_random_position
from runs as cluster
inner join baselines using (model, checkpoint, site, representation, k, refined, cluster_id)
left join tests using (model, checkpoint, site, representation, k, refined, cluster_id)
where cluster.baseline = 'cluster'
