-- The minimal neuron subset of each probing task (Alg. 4 of Durrani et al.): the first
-- minimal_n_neurons neurons of the task's LCA ordering (Alg. 3).
select
    r.model, r.checkpoint, r.site, r.task, r.layer, r.neuron, r.rank, r.mass_threshold
from {{ ref('stg_probe_neuron_ranking') }} as r
inner join {{ ref('stg_probe_tasks') }} as t using (model, checkpoint, site, task)
where r.rank <= t.minimal_n_neurons
