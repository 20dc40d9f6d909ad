-- How two studies agree on the same neurons, each relation with its chance level and a test
-- (H0 stated per relation in the yml); q_value is Benjamini-Hochberg over the rows of a relation
-- in a checkpoint, and `significant` (q <= 0.05) holds its false discovery rate at 5 %.
with ami as (
    select
        model, checkpoint, relation, config_a, config_b, layer,
        cast(null as varchar) as task,
        n_neurons,
        'ami' as statistic,
        ami as value,
        null_mean as chance_value,
        cast(null as double) as ci_low,
        cast(null as double) as ci_high,
        p_value
    from {{ ref('stg_study_agreement') }}
),

-- universal (Gurnee et al.) against salient (in the task's top set, Durrani et al.), per task
universal_salient_counts as (
    select
        u.model, u.checkpoint, u.site, s.task,
        count(*) filter (where u.is_universal and s.in_top_set) as n11,
        count(*) filter (where u.is_universal and not s.in_top_set) as n12,
        count(*) filter (where not u.is_universal and s.in_top_set) as n21,
        count(*) filter (where not u.is_universal and not s.in_top_set) as n22
    from {{ ref('fct_neuron_universality') }} as u
    inner join {{ ref('int_neuron_salience') }} as s
        using (model, checkpoint, site, layer, neuron)
    group by all
),

universal_salient_tests as (
    {{ fisher_exact('universal_salient_counts', ['model', 'checkpoint', 'site', 'task']) }}
),

universal_salient as (
    select
        model, checkpoint,
        'universal_vs_salient' as relation,
        'universal (excess correlation > threshold)' as config_a,
        'salient (top set of the task''s ranking), site ' || site as config_b,
        cast(null as bigint) as layer,
        task,
        n11 + n12 + n21 + n22 as n_neurons,
        'odds_ratio' as statistic,
        case when n12 * n21 > 0 then n11 * n22 / (n12 * n21)::double end as value,
        1.0 as chance_value,
        -- Woolf's interval on log OR with the Haldane-Anscombe +0.5 correction, 95 %
        exp(ln((n11 + 0.5) * (n22 + 0.5) / ((n12 + 0.5) * (n21 + 0.5)))
            - 1.959964 * sqrt(1 / (n11 + 0.5) + 1 / (n12 + 0.5) + 1 / (n21 + 0.5) + 1 / (n22 + 0.5)))
            as ci_low,
        exp(ln((n11 + 0.5) * (n22 + 0.5) / ((n12 + 0.5) * (n21 + 0.5)))
            + 1.959964 * sqrt(1 / (n11 + 0.5) + 1 / (n12 + 0.5) + 1 / (n21 + 0.5) + 1 / (n22 + 0.5)))
            as ci_high,
        p_value
    from universal_salient_tests
),

-- explanation score against activation sparsity and kurtosis, over the explained MLP neurons
explained as (
    select
        model, checkpoint, score,
        1 - frac_positive as sparsity,
        kurtosis
    from {{ ref('dim_neurons') }}
    where site = 'mlp' and score is not null and frac_positive is not null and kurtosis is not null
),

explained_ranks as (
    select
        model, checkpoint,
        {{ average_rank('score', ['model', 'checkpoint']) }} as score_rank,
        {{ average_rank('sparsity', ['model', 'checkpoint']) }} as sparsity_rank,
        {{ average_rank('kurtosis', ['model', 'checkpoint']) }} as kurtosis_rank
    from explained
),

score_correlations as (
    select model, checkpoint, 'explanation score' as config_a, 'activation sparsity' as config_b,
           count(*) as n_neurons, corr(score_rank, sparsity_rank) as rho
    from explained_ranks group by all
    union all
    select model, checkpoint, 'explanation score', 'activation kurtosis',
           count(*), corr(score_rank, kurtosis_rank)
    from explained_ranks group by all
),

-- ablated MLP activation clusters (Zhang et al.): share of the task's salient neurons in the
-- cluster against the cluster's drop in excess of its random baseline
cluster_salience as (
    select
        a.model, a.checkpoint, a.site, a.representation, a.k, a.refined, a.cluster_id, s.task,
        avg(s.in_top_set::int) as salient_share
    from {{ ref('stg_activation_clusters') }} as a
    inner join {{ ref('int_neuron_salience') }} as s
        using (model, checkpoint, site, layer, neuron)
    group by all
),

cluster_effects as (
    select
        c.model, c.checkpoint, c.task,
        c.salient_share,
        f.cluster_drop_pct - f.random_drop_pct as excess_drop
    from cluster_salience as c
    inner join {{ ref('fct_ablation_summary') }} as f
        using (model, checkpoint, site, representation, k, refined, cluster_id)
    where f.random_drop_pct is not null
),

cluster_ranks as (
    select
        model, checkpoint, task,
        {{ average_rank('salient_share', ['model', 'checkpoint', 'task']) }} as share_rank,
        {{ average_rank('excess_drop', ['model', 'checkpoint', 'task']) }} as drop_rank
    from cluster_effects
),

ablation_correlations as (
    select model, checkpoint, task, count(*) as n_clusters, corr(share_rank, drop_rank) as rho
    from cluster_ranks group by all
),

spearman_rows as (
    select
        model, checkpoint, 'explanation_score_vs_activation_shape' as relation, config_a,
        config_b, cast(null as varchar) as task, n_neurons as n, rho
    from score_correlations
    union all
    select
        model, checkpoint, 'salient_share_vs_ablation_drop', 'share of the cluster in the task''s top set',
        'cluster drop minus the random baseline''s (percent)', task, n_clusters, rho
    from ablation_correlations
),

-- Spearman's rho with the Fisher z interval and test, z's standard error from Bonett & Wright
-- (2000): sqrt((1 + rho^2 / 2) / (n - 3))
spearman as (
    select
        model, checkpoint, relation, config_a, config_b,
        cast(null as bigint) as layer,
        task, n as n_neurons,
        'spearman_rho' as statistic,
        rho as value,
        0.0 as chance_value,
        tanh(z - 1.959964 * se) as ci_low,
        tanh(z + 1.959964 * se) as ci_high,
        2 * (1 - {{ normal_cdf('abs(z) / se') }}) as p_value
    from (
        select
            *,
            case when n > 3 and abs(rho) < 1 then 0.5 * ln((1 + rho) / (1 - rho)) end as z,
            case when n > 3 then sqrt((1 + rho * rho / 2) / (n - 3)) end as se
        from spearman_rows
    )
),

relations as (
    select * from ami
    union all by name
    select * from universal_salient
    union all by name
    select * from spearman
),

adjusted as (
    {{ benjamini_hochberg('relations', ['model', 'checkpoint', 'relation'],
                          'config_a, config_b, layer, task') }}
)

select *, coalesce(q_value <= 0.05, false) as significant
from adjusted
