-- Every grid cell's score is S = alpha (A_top - A_bottom) - beta (A_noreg - A_current)
-- (Alg. 2 of Durrani et al.), and exactly one cell per task is selected: the first with the top S.
select model, checkpoint, site, task, lambda1, lambda2, 'score differs from Alg. 2' as problem
from {{ ref('stg_probe_grid') }}
where abs(score - (alpha * (accuracy_top - accuracy_bottom)
                   - beta * (accuracy_noreg - accuracy_current))) > 1e-9
union all
select model, checkpoint, site, task, null, null, 'not exactly one selected cell with the top score'
from {{ ref('stg_probe_grid') }}
group by model, checkpoint, site, task
having count(*) filter (where selected) <> 1
    or max(score) > max(score) filter (where selected) + 1e-12
