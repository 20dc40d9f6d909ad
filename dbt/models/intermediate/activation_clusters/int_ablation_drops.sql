-- Performance drop of each ablation run: the relative increase of the loss on the cluster's
-- top tokens, in percent (Table 3 of Zhang et al.: positive = ablation hurts).
select
    *,
    100.0 * (loss_ablated - loss_base) / loss_base as loss_drop_pct
from {{ ref('stg_activation_ablations') }}
