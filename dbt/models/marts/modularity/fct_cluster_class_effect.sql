-- Cluster ON/OFF per semantic class (Golechha et al., Fig. 2): the relative loss change on the
-- class's tokens with the cluster zero-ablated (OFF) and with all other clusters ablated (ON).
select
    model,
    checkpoint,
    layer,
    k,
    cluster_id,
    semantic_class,
    n_neurons,
    n_targets,
    loss_base,
    loss_off,
    loss_on,
    100.0 * (loss_off - loss_base) / loss_base as off_loss_change_pct,
    100.0 * (loss_on - loss_base) / loss_base as on_loss_change_pct
from {{ ref('stg_cluster_class_effect') }}
