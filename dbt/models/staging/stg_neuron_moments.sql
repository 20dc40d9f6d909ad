select
    cast(model as varchar) as model,
    cast(checkpoint as varchar) as checkpoint,
    cast(site as varchar) as site,
    cast(layer as bigint) as layer,
    cast(neuron as bigint) as neuron,
    cast(n_tokens as bigint) as n_tokens,
    cast(mean as double) as mean_activation,
    cast(std as double) as std_activation,
    cast(skew as double) as skew,
    cast(kurtosis as double) as kurtosis,
    cast(max as double) as max_activation,
    cast(frac_positive as double) as frac_positive
from {{ source('lake', 'neuron_moments') }}
where model <> '_none'
