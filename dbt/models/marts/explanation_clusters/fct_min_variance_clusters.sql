-- Drill-down (Ben Yaakov et al., Sec. 3.3, Tables 2-3, Figs. 5-6): per clustering, the clusters
-- of at least var('drilldown_min_neurons') neurons with the lowest layer variance, with their
-- median layer, topic words, representative explanations and layer histogram.
with variances as (
    select * from {{ ref('fct_cluster_layer_variance') }}
    where n_neurons >= {{ var('drilldown_min_neurons', 10) }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by model, checkpoint, method, filter_percentile, seed
            order by layer_variance, cluster_id
        ) as variance_rank
    from variances
),

histograms as (
    select
        model, checkpoint, method, filter_percentile, seed, cluster_id,
        list(n_neurons order by layer) as layer_histogram
    from {{ ref('int_layer_cluster_counts') }}
    group by all
)

select
    ranked.model,
    ranked.checkpoint,
    ranked.method,
    ranked.filter_percentile,
    ranked.seed,
    ranked.variance_rank,
    ranked.cluster_id,
    ranked.n_neurons,
    ranked.layer_variance,
    ranked.layer_mean,
    ranked.layer_median,
    topics.topic_words,
    topics.representative_explanations,
    histograms.layer_histogram
from ranked
left join {{ ref('stg_cluster_topics') }} as topics
    using (model, checkpoint, method, filter_percentile, seed, cluster_id)
left join histograms
    using (model, checkpoint, method, filter_percentile, seed, cluster_id)
where ranked.variance_rank <= {{ var('drilldown_top_n', 5) }}
