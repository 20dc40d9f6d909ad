-- Neurons of the minimal subset needed per label (Durrani et al., Sec. 5.2, Fig. 7): a neuron of
-- the minimal subset counts for label l when it is salient for l at the mass threshold p* where
-- the subset was complete (mass_before < p*). Localization compares the count with the median
-- over the task's labels: localized at most half of it, distributed at least twice it.
with counts as (
    select
        lr.model, lr.checkpoint, lr.site, lr.task, lr.label,
        count(m.neuron) filter (where lr.mass_before < t.minimal_mass_threshold) as n_neurons
    from {{ ref('stg_probe_label_ranking') }} as lr
    inner join {{ ref('stg_probe_tasks') }} as t using (model, checkpoint, site, task)
    left join {{ ref('int_probe_minimal_neurons') }} as m
        using (model, checkpoint, site, task, layer, neuron)
    group by all
),

words as (
    select model, task, label, count(*) as n_train_words
    from {{ ref('stg_probe_labels') }}
    where split = 'train'
    group by all
),

ranked as (
    select
        counts.*,
        coalesce(words.n_train_words, 0) as n_train_words,
        median(counts.n_neurons) over (
            partition by counts.model, counts.checkpoint, counts.site, counts.task
        ) as task_median
    from counts
    left join words using (model, task, label)
)

select
    model, checkpoint, site, task, label, n_train_words, n_neurons,
    n_neurons / nullif(task_median, 0) as ratio_to_median,
    case
        when n_neurons <= 0.5 * task_median then 'localized'
        when n_neurons >= 2 * task_median then 'distributed'
        else 'intermediate'
    end as localization
from ranked
