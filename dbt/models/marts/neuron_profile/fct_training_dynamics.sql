-- One row per checkpoint with the headline figure of every study present, so that one query
-- shows them change over training. Each figure is null where its study did not run.
with checkpoints as (
    select distinct model, checkpoint from {{ ref('stg_neuron_moments') }}
    union
    select distinct model, checkpoint from {{ ref('stg_clusterings') }}
),

gini as (
    select model, checkpoint, avg(gini_excess) as kmeans_gini_excess
    from {{ ref('fct_layer_gini') }}
    where method = 'kmeans' and filter_percentile = 0
    group by model, checkpoint
),

variance as (
    select model, checkpoint, wavg_variance as kmeans_wavg_variance
    from {{ ref('fct_cluster_variance_summary') }}
    where method = 'kmeans' and filter_percentile = 0
),

probes as (
    select model, checkpoint, avg(accuracy_all) as probe_accuracy, avg(selectivity_all) as probe_selectivity
    from {{ ref('fct_probe_minimal_subset') }}
    group by model, checkpoint
),

ablation as (
    select
        model, checkpoint,
        avg(cluster_drop_pct) as cluster_ablation_drop_pct,
        avg(share_significant_random) as share_clusters_significant
    from {{ ref('fct_ablation_by_configuration') }}
    where site = 'mlp'
    group by model, checkpoint
),

purity as (
    select model, checkpoint, sum(n_pure_clusters) / sum(n_clusters) as share_pure_clusters
    from {{ ref('fct_concept_purity_summary') }}
    where site = 'mlp'
    group by model, checkpoint
),

universal as (
    select model, checkpoint, sum(n_universal) / sum(n_neurons) as share_universal
    from {{ ref('fct_universal_neurons_by_layer') }}
    group by model, checkpoint
),

modularity as (
    select model, checkpoint, avg(enmeshment) as mean_enmeshment_k4
    from {{ ref('fct_enmeshment') }}
    where matrix = 'mlp_in' and similarity = 'weight' and k = 4
    group by model, checkpoint
),

stability as (
    select model, checkpoint, avg(self_corr) as mean_self_corr
    from {{ ref('stg_neuron_stability') }}
    group by model, checkpoint
)

select
    checkpoints.model,
    checkpoints.checkpoint,
    try_cast(regexp_extract(checkpoints.checkpoint, '^checkpoint-([0-9]+)$', 1) as bigint) as step,
    gini.kmeans_gini_excess,
    variance.kmeans_wavg_variance,
    probes.probe_accuracy,
    probes.probe_selectivity,
    ablation.cluster_ablation_drop_pct,
    ablation.share_clusters_significant,
    purity.share_pure_clusters,
    universal.share_universal,
    stability.mean_self_corr,
    modularity.mean_enmeshment_k4
from checkpoints
left join gini using (model, checkpoint)
left join variance using (model, checkpoint)
left join probes using (model, checkpoint)
left join ablation using (model, checkpoint)
left join purity using (model, checkpoint)
left join universal using (model, checkpoint)
left join stability using (model, checkpoint)
left join modularity using (model, checkpoint)
