-- Universal neurons per layer (Gurnee et al., Fig. 2): count and share, and the mean
-- correlations they are judged by.
select
    model,
    checkpoint,
    site,
    layer,
    count(*) as n_neurons,
    count(*) filter (where is_universal) as n_universal,
    avg(is_universal::int) as share_universal,
    avg(mean_corr) as mean_corr,
    avg(mean_baseline) as mean_baseline,
    avg(excess_corr) as mean_excess_corr
from {{ ref('fct_neuron_universality') }}
group by model, checkpoint, site, layer
