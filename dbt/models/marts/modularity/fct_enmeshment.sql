-- Enmeshment / clusterability E by layer, weight matrix and k (Golechha et al., Fig. 1); the
-- plain and the modular-trained variants are two models of the same table.
select model, checkpoint, layer, matrix, similarity, k, enmeshment
from {{ ref('stg_enmeshment') }}
