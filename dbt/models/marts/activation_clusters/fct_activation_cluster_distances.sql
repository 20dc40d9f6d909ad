-- Closeness within clusters (Zhang et al., Sec. 6.1, Fig. 2): the max and mean 1 - cosine
-- distance within each cluster, averaged over the clusters with at least two neurons.
select
    model,
    checkpoint,
    site,
    representation,
    k,
    refined,
    method,
    count(*) as n_clusters,
    sum(n_neurons) as n_neurons,
    count(max_distance) as n_multi_neuron_clusters,
    avg(max_distance) as avg_max_distance,
    avg(mean_distance) as avg_mean_distance
from {{ ref('stg_activation_cluster_distances') }}
group by all
