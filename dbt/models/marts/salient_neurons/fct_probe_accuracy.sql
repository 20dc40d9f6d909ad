-- Test accuracy of the probes per task, labels, selection, mode and percent of neurons, averaged
-- over the seeds of the random selections (Tables 2, 3 and 5 of Durrani et al., long form).
select
    a.model,
    a.checkpoint,
    a.site,
    a.task,
    a.labels,
    a.selection,
    a.mode,
    a.percent,
    any_value(a.n_neurons) as n_neurons,
    count(*) as n_runs,
    avg(a.accuracy) as accuracy,
    stddev_pop(a.accuracy) as accuracy_std,
    min(a.accuracy) as accuracy_min,
    max(a.accuracy) as accuracy_max,
    any_value(t.majority_accuracy) as majority_accuracy
from {{ ref('stg_probe_accuracy') }} as a
inner join {{ ref('stg_probe_tasks') }} as t using (model, checkpoint, site, task)
group by a.model, a.checkpoint, a.site, a.task, a.labels, a.selection, a.mode, a.percent
