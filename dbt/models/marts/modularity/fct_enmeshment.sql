-- Enmeshment / clusterability E by layer, weight matrix and k (Golechha et al., Fig. 1), against
-- the same clustering procedure on the matrix with its entries shuffled (an unstructured matrix
-- already gives E well above 1 / k: about 0.59 at k = 2 for a Gaussian one): the excess over
-- that baseline is the modularity the weights' structure adds. The plain and the modular-trained
-- variants are two models of the same table.
select
    model, checkpoint, layer, matrix, similarity, k, enmeshment, baseline_enmeshment, baseline_sd,
    baseline_draws,
    enmeshment - baseline_enmeshment as enmeshment_excess
from {{ ref('stg_enmeshment') }}
