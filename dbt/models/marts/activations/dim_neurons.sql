-- One row per neuron of each model checkpoint: its activation moments (MLP and residual sites) and,
-- for MLP neurons, its explanation. An explanation-only study (no model: e.g. the public GPT-2 XL
-- explanations) gives its explained neurons with null moments.
select
    coalesce(moments.model, explanations.model) as model,
    coalesce(moments.checkpoint, explanations.checkpoint) as checkpoint,
    coalesce(moments.site, 'mlp') as site,
    coalesce(moments.layer, explanations.layer) as layer,
    coalesce(moments.neuron, explanations.neuron) as neuron,
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
full outer join {{ ref('stg_explanations') }} as explanations
    on moments.site = 'mlp'
    and moments.model = explanations.model
    and moments.checkpoint = explanations.checkpoint
    and moments.layer = explanations.layer
    and moments.neuron = explanations.neuron
