-- Gini of each layer under each shuffle of the permutation null (layer labels shuffled against
-- the same cluster assignment), over all clusters 0..n_clusters-1, the ones the shuffle left
-- empty included, by the same SQL as the observed Gini (macro gini_over_clusters), from each
-- layer's histogram of counts as the lake stores it. A table, not a view: at 307,200 neurons
-- the null is millions of rows, read once here instead of once by each test and by
-- fct_layer_gini.
{{ config(materialized='table') }}

with counts as (
    select shuffled.*, clusterings.n_clusters
    from {{ ref('stg_explanation_cluster_null_counts') }} as shuffled
    inner join {{ ref('stg_clusterings') }} as clusterings
        using (model, checkpoint, method, filter_percentile, seed)
)

{{ gini_over_clusters('counts',
    ['model', 'checkpoint', 'method', 'filter_percentile', 'seed', 'shuffle', 'layer'],
    held='sum(n_clusters_holding)') }}
