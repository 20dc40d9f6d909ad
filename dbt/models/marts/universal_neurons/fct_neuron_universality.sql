-- Universal neurons (Gurnee et al., Eq. 3): per neuron, the max, mean and min over the other
-- models of its best correlation and of the rotated baseline; excess_corr = mean_corr -
-- mean_baseline; universal when the excess is above the study's threshold. With the neuron's
-- activation moments (the properties the paper compares universal neurons by).
with per_neuron as (
    select
        model, checkpoint, site, layer, neuron,
        count(*) as n_other_models,
        min(n_tokens) as n_tokens,
        max(best_corr) as max_corr,
        avg(best_corr) as mean_corr,
        min(best_corr) as min_corr,
        max(baseline_corr) as max_baseline,
        avg(baseline_corr) as mean_baseline,
        min(baseline_corr) as min_baseline,
        any_value(threshold) as threshold
    from {{ ref('stg_neuron_universality') }}
    group by model, checkpoint, site, layer, neuron
)

select
    per_neuron.*,
    per_neuron.mean_corr - per_neuron.mean_baseline as excess_corr,
    coalesce(per_neuron.mean_corr - per_neuron.mean_baseline > per_neuron.threshold, false)
        as is_universal,
    moments.mean_activation,
    moments.std_activation * moments.std_activation as variance,
    moments.skew,
    moments.kurtosis,
    moments.frac_positive as activation_frequency
from per_neuron
left join {{ ref('stg_neuron_moments') }} as moments
    on per_neuron.model = moments.model
    and per_neuron.checkpoint = moments.checkpoint
    and per_neuron.site = moments.site
    and per_neuron.layer = moments.layer
    and per_neuron.neuron = moments.neuron
