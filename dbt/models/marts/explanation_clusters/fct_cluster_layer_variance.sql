-- Layer spread of each non-empty cluster (Ben Yaakov et al., Sec. 3.2): mean, median and the
-- sample variance (ddof = 1, as the paper's code) of its neurons' layer indices, null for a
-- cluster of one neuron; and the sum of squared deviations from the cluster's mean layer (for the
-- population-form eta squared). Noise (cluster_id -1) is no cluster.
select
    model,
    checkpoint,
    method,
    filter_percentile,
    seed,
    cluster_id,
    count(*) as n_neurons,
    avg(layer) as layer_mean,
    median(layer) as layer_median,
    var_samp(layer) as layer_variance,
    var_pop(layer) * count(*) as layer_sum_squares
from {{ ref('stg_explanation_clusters') }}
where cluster_id >= 0
group by model, checkpoint, method, filter_percentile, seed, cluster_id
