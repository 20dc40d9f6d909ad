-- Neurons of each layer in each cluster of each clustering, over ALL clusters 0..n_clusters-1:
-- a cluster that received none of the layer's neurons is a row with n_neurons = 0. Noise
-- neurons (cluster_id -1, kept by DBSCAN / HDBSCAN with noise: keep) belong to no cluster.
with clusterings as (
    select * from {{ ref('stg_clusterings') }}
),

assignments as (
    select * from {{ ref('stg_explanation_clusters') }}
    where cluster_id >= 0
),

layers as (
    select distinct model, checkpoint, method, filter_percentile, seed, layer
    from assignments
),

grid as (
    select
        layers.*,
        clusterings.n_clusters,
        unnest(range(clusterings.n_clusters)) as cluster_id
    from layers
    inner join clusterings using (model, checkpoint, method, filter_percentile, seed)
),

counts as (
    select model, checkpoint, method, filter_percentile, seed, layer, cluster_id,
        count(*) as n_neurons
    from assignments
    group by all
)

select
    grid.model, grid.checkpoint, grid.method, grid.filter_percentile, grid.seed,
    grid.layer, grid.n_clusters, grid.cluster_id,
    coalesce(counts.n_neurons, 0) as n_neurons
from grid
left join counts using (model, checkpoint, method, filter_percentile, seed, layer, cluster_id)
