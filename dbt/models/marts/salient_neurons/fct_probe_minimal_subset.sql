-- The minimal neuron subset per task in the shape of Tables 3 and 5 of Durrani et al.:
-- Neu_t, Acc_a (all neurons), Acc_t (top N retrained), Acc_r (random N, mean over seeds),
-- Acc_b (bottom N), Sel_a and Sel_t (selectivity with all and with the top neurons).
with acc as (
    select * from {{ ref('fct_probe_accuracy') }}
    where labels = 'task' and mode = 'retrained'
),

sel as (
    select * from {{ ref('fct_probe_selectivity') }}
)

select
    t.model,
    t.checkpoint,
    t.site,
    t.task,
    t.n_labels,
    t.n_neurons as n_neurons_total,
    t.minimal_percent,
    t.minimal_n_neurons,
    t.lambda1,
    t.lambda2,
    t.majority_accuracy,
    max(case when acc.selection = 'all' then acc.accuracy end) as accuracy_all,
    max(case when acc.selection = 'top' then acc.accuracy end) as accuracy_top,
    max(case when acc.selection = 'random' then acc.accuracy end) as accuracy_random,
    max(case when acc.selection = 'bottom' then acc.accuracy end) as accuracy_bottom,
    max(case when sel.selection = 'all' then sel.selectivity end) as selectivity_all,
    max(case when sel.selection = 'top' then sel.selectivity end) as selectivity_top
from {{ ref('stg_probe_tasks') }} as t
left join acc using (model, checkpoint, site, task)
left join sel using (model, checkpoint, site, task)
group by all
