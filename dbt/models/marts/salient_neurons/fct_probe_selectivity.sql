-- Selectivity (Hewitt and Liang; Durrani et al., Sec. 2.5): task accuracy minus control-task
-- accuracy of probes retrained on all neurons and on the minimal (top) subset.
with retrained as (
    select * from {{ ref('fct_probe_accuracy') }}
    where mode = 'retrained' and selection in ('all', 'top')
)

select
    task.model,
    task.checkpoint,
    task.site,
    task.task,
    task.selection,
    task.percent,
    task.n_neurons,
    task.accuracy as task_accuracy,
    control.accuracy as control_accuracy,
    task.accuracy - control.accuracy as selectivity
from retrained as task
inner join retrained as control
    on task.model = control.model
    and task.checkpoint = control.checkpoint
    and task.site = control.site
    and task.task = control.task
    and task.selection = control.selection
    and task.percent = control.percent
where task.labels = 'task' and control.labels = 'control'
