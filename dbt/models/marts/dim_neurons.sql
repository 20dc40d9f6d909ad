-- One row per neuron (MLP and residual sites) of each model checkpoint: its activation moments and, for MLP neurons, its explanation.
select
    moments.model,
    moments.checkpoint,
    moments.site,
    moments.layer,
    moments.neuron,
    moments.n_tokens,
    moments.mean_activation,
    moments.std_activation,
    moments.skew,
    moments.kurtosis,
    moments.max_activation,
    moments.frac_positive,
    explanations.explanation,
    explanations.score
from {{ ref('stg_neuron_moments') }} as moments
left join {{ ref('stg_explanations') }} as explanations
    on moments.site = 'mlp'
    and moments.model = explanations.model
    and moments.checkpoint = explanations.checkpoint
    and moments.layer = explanations.layer
    and moments.neuron = explanations.neuron
