-- Gini coefficient of each layer's neuron counts over all clusters (Ben Yaakov et al., Sec. 3.1),
-- against the permutation null (H0: the layer labels are exchangeable across the clustered
-- neurons, given the cluster sizes): the mean Gini of the layer over the shuffles and the null's
-- 2.5 / 97.5 percentiles (its central 95 % band); the one-sided permutation p-value of the
-- observed Gini, (1 + #{shuffles with Gini >= observed}) / (1 + shuffles); and its
-- Benjamini-Hochberg q-value over the layers of the clustering, so `above_null` (q <= 0.05)
-- controls the false discovery rate at 5 % per clustering.
with observed as (
    {{ gini_over_clusters(ref('int_layer_cluster_counts'),
        ['model', 'checkpoint', 'method', 'filter_percentile', 'seed', 'layer']) }}
),

null_distribution as (
    select
        model, checkpoint, method, filter_percentile, seed, layer,
        count(*) as n_shuffles,
        avg(shuffled.gini) as gini_null,
        quantile_cont(shuffled.gini, 0.025) as gini_null_p025,
        quantile_cont(shuffled.gini, 0.975) as gini_null_p975,
        -- a shuffle ties the observed value within rounding of the same SQL
        count(*) filter (where shuffled.gini >= observed.gini - 1e-12) as n_null_at_least
    from {{ ref('int_layer_gini_null') }} as shuffled
    inner join observed using (model, checkpoint, method, filter_percentile, seed, layer)
    group by all
),

tested as (
    select
        observed.*,
        null_distribution.* exclude (model, checkpoint, method, filter_percentile, seed, layer,
                                     n_null_at_least),
        observed.gini - null_distribution.gini_null as gini_excess,
        (1.0 + null_distribution.n_null_at_least) / (1.0 + null_distribution.n_shuffles)
            as p_value
    from observed
    left join null_distribution
        using (model, checkpoint, method, filter_percentile, seed, layer)
),

adjusted as (
    {{ benjamini_hochberg('tested', ['model', 'checkpoint', 'method', 'filter_percentile', 'seed'],
                          'layer') }}
)

select
    model, checkpoint, method, filter_percentile, seed, layer, n_neurons, n_clusters, gini,
    n_shuffles, gini_null, gini_null_p025, gini_null_p975, gini_excess, p_value, q_value,
    q_value <= 0.05 as above_null
from adjusted
