-- Per probing task and neuron (Durrani et al.): its rank in the task's LCA ordering (Alg. 3) as a
-- percentile, whether it is in the top set (the first top_percent % of the ranking, counted as the
-- probe asset counts it: ceil(top_percent * n / 100), at least 1) and in the minimal subset
-- (Alg. 4), and the labels it is salient for at the minimal subset's mass threshold p*
-- (mass_before < p*, as in fct_probe_label_neurons).
with labels as (
    select
        lr.model, lr.checkpoint, lr.site, lr.task, lr.layer, lr.neuron,
        list(lr.label order by lr.label) filter (where lr.mass_before < t.minimal_mass_threshold)
            as salient_labels
    from {{ ref('stg_probe_label_ranking') }} as lr
    inner join {{ ref('stg_probe_tasks') }} as t using (model, checkpoint, site, task)
    group by all
)

select
    r.model, r.checkpoint, r.site, r.task, r.layer, r.neuron, r.rank,
    1.0 - (r.rank - 1.0) / t.n_neurons as rank_percentile,
    r.rank <= greatest(1, least(t.n_neurons, ceil(t.top_percent * t.n_neurons / 100.0 - 1e-9)))
        as in_top_set,
    r.rank <= t.minimal_n_neurons as in_minimal_subset,
    coalesce(labels.salient_labels, []) as salient_labels
from {{ ref('stg_probe_neuron_ranking') }} as r
inner join {{ ref('stg_probe_tasks') }} as t using (model, checkpoint, site, task)
left join labels using (model, checkpoint, site, task, layer, neuron)
