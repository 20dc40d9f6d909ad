-- One row per neuron of every checkpoint (the neurons of dim_neurons) with what every study says
-- about it; a study that did not run leaves its columns null (lists empty), never the row out.
with top_tokens as (
    select model, checkpoint, site, layer, neuron,
           list(token order by mean_activation desc, token_id) as top_tokens
    from (
        select *, row_number() over (partition by model, checkpoint, site, layer, neuron
                                     order by mean_activation desc, token_id) as position
        from {{ ref('stg_neuron_token_means') }}
    )
    where position <= 5
    group by all
),

top_contexts as (
    select model, checkpoint, site, layer, neuron,
           list({'rank': rank, 'activation': activation, 'token': token, 'context': context}
                order by rank) as top_contexts
    from {{ ref('stg_neuron_top_contexts') }}
    group by all
),

explanation_clusters as (
    select model, checkpoint, 'mlp' as site, layer, neuron,
           list({'method': method, 'filter_percentile': filter_percentile, 'seed': seed,
                 'cluster_id': cluster_id} order by method, filter_percentile, seed)
               as explanation_clusters
    from {{ ref('stg_explanation_clusters') }}
    group by all
),

activation_clusters as (
    select c.model, c.checkpoint, c.site, c.layer, c.neuron,
           list({'representation': c.representation, 'k': c.k, 'refined': c.refined,
                 'method': c.method, 'cluster_id': c.cluster_id,
                 'cluster_drop_pct': a.cluster_drop_pct, 'random_drop_pct': a.random_drop_pct,
                 'random_q_value': a.random_q_value, 'significant_random': a.significant_random}
                order by c.representation, c.k, c.refined, c.method) as activation_clusters
    from {{ ref('stg_activation_clusters') }} as c
    left join {{ ref('fct_ablation_summary') }} as a
        using (model, checkpoint, site, representation, k, refined, cluster_id)
    group by all
),

probing as (
    select model, checkpoint, site, layer, neuron,
           list({'task': task, 'rank': rank, 'rank_percentile': rank_percentile,
                 'in_top_set': in_top_set, 'in_minimal_subset': in_minimal_subset,
                 'salient_labels': salient_labels} order by task) as probing,
           count(*) filter (where in_top_set) as n_tasks_salient
    from {{ ref('int_neuron_salience') }}
    group by all
),

spectral_modules as (
    select model, checkpoint, 'mlp' as site, layer, neuron,
           list({'matrix': matrix, 'similarity': similarity, 'k': k, 'module': module}
                order by matrix, similarity, k) as spectral_modules
    from {{ ref('stg_spectral_modules') }}
    group by all
)

select
    n.model, n.checkpoint, n.site, n.layer, n.neuron,
    n.n_tokens, n.mean_activation, n.std_activation, n.skew, n.kurtosis, n.max_activation,
    n.frac_positive,
    t.top_tokens,
    coalesce(c.top_contexts, []) as top_contexts,
    n.explanation, n.score,
    coalesce(e.explanation_clusters, []) as explanation_clusters,
    coalesce(a.activation_clusters, []) as activation_clusters,
    coalesce(p.probing, []) as probing,
    p.n_tasks_salient,
    u.n_other_models,
    u.max_corr as universality_best_corr,
    u.mean_corr as universality_mean_corr,
    u.mean_baseline as universality_baseline,
    u.excess_corr as universality_excess,
    u.is_universal,
    coalesce(m.spectral_modules, []) as spectral_modules,
    s.previous_checkpoint,
    s.self_corr as stability_self_corr,
    s.best_corr as stability_best_corr
from {{ ref('dim_neurons') }} as n
left join top_tokens as t using (model, checkpoint, site, layer, neuron)
left join top_contexts as c using (model, checkpoint, site, layer, neuron)
left join explanation_clusters as e using (model, checkpoint, site, layer, neuron)
left join activation_clusters as a using (model, checkpoint, site, layer, neuron)
left join probing as p using (model, checkpoint, site, layer, neuron)
left join {{ ref('fct_neuron_universality') }} as u using (model, checkpoint, site, layer, neuron)
left join spectral_modules as m using (model, checkpoint, site, layer, neuron)
left join {{ ref('stg_neuron_stability') }} as s using (model, checkpoint, site, layer, neuron)
