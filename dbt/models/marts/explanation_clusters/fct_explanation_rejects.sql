-- What the explanation reader could not use, per model checkpoint: malformed files with their
-- paths, neurons missing from the layer x neuron grid, and neurons with a null score (kept).
select * from {{ ref('stg_explanation_rejects') }}
