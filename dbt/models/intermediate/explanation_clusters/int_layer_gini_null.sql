-- Gini of each layer under each shuffle of the permutation null (layer labels shuffled against
-- the same cluster assignment), over all clusters 0..n_clusters-1 with zeros, by the same SQL
-- as the observed Gini (macro gini_over_clusters).
with clusterings as (
    select * from {{ ref('stg_clusterings') }}
),

shuffled as (
    select * from {{ ref('stg_explanation_cluster_null_counts') }}
),

layers as (
    select distinct model, checkpoint, method, filter_percentile, seed, shuffle, layer
    from shuffled
),

grid as (
    select layers.*, unnest(range(clusterings.n_clusters)) as cluster_id
    from layers
    inner join clusterings using (model, checkpoint, method, filter_percentile, seed)
),

counts as (
    select
        grid.*,
        coalesce(shuffled.n_neurons, 0) as n_neurons
    from grid
    left join shuffled
        using (model, checkpoint, method, filter_percentile, seed, shuffle, layer, cluster_id)
)

{{ gini_over_clusters('counts',
    ['model', 'checkpoint', 'method', 'filter_percentile', 'seed', 'shuffle', 'layer']) }}
