-- Layer spread of each non-empty cluster (Ben Yaakov et al., Sec. 3.2): mean, median and the
-- population variance (ddof = 0) of its neurons' layer indices. Noise (cluster_id -1) is no cluster.
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
    var_pop(layer) as layer_variance
from {{ ref('stg_explanation_clusters') }}
where cluster_id >= 0
group by model, checkpoint, method, filter_percentile, seed, cluster_id
