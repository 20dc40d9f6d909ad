-- Effective circuit size per semantic class (Golechha et al., Sec. 3.2, Fig. 3): the fraction of
-- the layer's MLP input weights left when pruning by magnitude until the class's loss would rise
-- above the tolerance.
select
    model,
    checkpoint,
    layer,
    semantic_class,
    n_weights,
    fraction_left,
    round(fraction_left * n_weights) as weights_left,
    loss_base,
    loss_pruned,
    tolerance
from {{ ref('stg_effective_circuit_size') }}
