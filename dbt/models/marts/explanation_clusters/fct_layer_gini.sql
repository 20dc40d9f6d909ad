-- Gini coefficient of each layer's neuron counts over all clusters (Ben Yaakov et al., Sec. 3.1),
-- against the permutation null: the mean Gini of the layer when the layer labels are shuffled
-- against the same clusters, with the 2.5 / 97.5 percentiles of the shuffles.
with observed as (
    {{ gini_over_clusters(ref('int_layer_cluster_counts'),
        ['model', 'checkpoint', 'method', 'filter_percentile', 'seed', 'layer']) }}
),

null_distribution as (
    select
        model, checkpoint, method, filter_percentile, seed, layer,
        count(*) as n_shuffles,
        avg(gini) as gini_null,
        quantile_cont(gini, 0.025) as gini_null_p025,
        quantile_cont(gini, 0.975) as gini_null_p975
    from {{ ref('int_layer_gini_null') }}
    group by all
)

select
    observed.model,
    observed.checkpoint,
    observed.method,
    observed.filter_percentile,
    observed.seed,
    observed.layer,
    observed.n_neurons,
    observed.n_clusters,
    observed.gini,
    null_distribution.n_shuffles,
    null_distribution.gini_null,
    null_distribution.gini_null_p025,
    null_distribution.gini_null_p975,
    observed.gini - null_distribution.gini_null as gini_excess,
    observed.gini - null_distribution.gini_null_p975 as gini_excess_low,
    observed.gini - null_distribution.gini_null_p025 as gini_excess_high
from observed
left join null_distribution
    using (model, checkpoint, method, filter_percentile, seed, layer)
