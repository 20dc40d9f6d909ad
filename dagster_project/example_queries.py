"""Example queries of the warehouse: what `nwh demo` prints, what the README shows and what a test
runs against the tiny study (every one must return rows)."""

EXAMPLE_QUERIES = [
    ("Gini per layer, KMeans vs random, no filter",
     "select method, layer, n_neurons, round(gini, 3) as gini from fct_layer_gini "
     "where filter_percentile = 0 order by method, layer"),
    ("Layer variance of clusters against the uniform baseline",
     "select method, filter_percentile, n_clusters, round(mean_variance, 3) as mean_var, "
     "round(wavg_variance, 3) as wavg_var, uniform_variance from fct_cluster_variance_summary "
     "order by method, filter_percentile"),
    ("Gini against the permutation null, per method and filter",
     "select method, filter_percentile, round(avg(gini), 3) as gini, "
     "round(avg(gini_null), 3) as gini_null, round(avg(gini_excess), 3) as excess, "
     "count(*) filter (where above_null) as layers_above_null "
     "from fct_layer_gini group by all order by all"),
    ("The lowest-variance cluster of each method, with its topic",
     "select method, cluster_id, n_neurons, round(layer_variance, 2) as variance, layer_median, "
     "topic_words[1:4] as topic from fct_min_variance_clusters "
     "where filter_percentile = 0 and variance_rank = 1 order by method"),
    ("Best-explained neurons",
     "select layer, neuron, round(score, 3) as score, explanation from dim_neurons "
     "where score is not null order by score desc limit 5"),
    ("Salient neurons: minimal subset per task (Tables 3 and 5 of Durrani et al.)",
     "select task, round(minimal_percent, 1) as neu_t, round(majority_accuracy, 3) as majority, "
     "round(accuracy_all, 3) as acc_a, round(accuracy_top, 3) as acc_t, "
     "round(accuracy_random, 3) as acc_r, round(accuracy_bottom, 3) as acc_b, "
     "round(selectivity_all, 3) as sel_a, round(selectivity_top, 3) as sel_t "
     "from fct_probe_minimal_subset order by task"),
    ("Salient neurons: keep 20 % and zero the rest (Table 2)",
     "select task, selection, n_runs, round(accuracy, 3) as accuracy from fct_probe_accuracy "
     "where mode = 'masked' and labels = 'task' order by task, accuracy desc"),
    ("Activation clusters: ablation against random baselines (Table 3 of Zhang et al.)",
     "select site, representation, k, refined, n_clusters_ablated as n, "
     "round(cluster_drop_pct, 2) as cluster, round(random_drop_pct, 2) as random, "
     "round(random_layer_drop_pct, 2) as random_layer, "
     "round(random_position_drop_pct, 2) as random_position, "
     "round(share_significant_random, 2) as significant from fct_ablation_by_configuration "
     "order by all"),
    ("Activation clusters: concept purity against random clusters of the same sizes",
     "select site, representation, k, refined, n_clusters, n_pure_clusters, "
     "n_pure_random_clusters from fct_concept_purity_summary where not refined order by all"),
    ("Modularity: enmeshment by k, every model (plain and modular variants) in one query",
     "select model, k, round(avg(enmeshment), 3) as enmeshment from fct_enmeshment "
     "where matrix = 'mlp_in' and similarity = 'weight' group by all order by model, k"),
    ("Universal neurons per layer",
     "select layer, n_neurons, n_universal, round(mean_corr, 3) as mean_corr, "
     "round(mean_baseline, 3) as baseline from fct_universal_neurons_by_layer order by layer"),
    ("Cross-study: explanation clusters that agree most with an activation clustering",
     "select config_a as explanation_clustering, config_b as activation_clustering, n_neurons, "
     "round(value, 3) as ami, round(chance_value, 3) as chance, round(q_value, 4) as q, "
     "significant from fct_study_agreement where relation = 'explanation_vs_activation_clusters' "
     "order by value desc limit 5"),
    ("Cross-study: every relation, how many of its tests beat chance (BH 5 %)",
     "select relation, statistic, count(*) as n_tests, count(*) filter (where significant) "
     "as n_significant, round(median(value), 3) as median_value from fct_study_agreement "
     "group by all order by relation"),
    ("One neuron's profile: what every study says about it",
     "select site, layer, neuron, explanation, round(score, 3) as score, top_tokens[1:3] as "
     "top_tokens, is_universal, n_tasks_salient, len(activation_clusters) as n_act_clusterings "
     "from dim_neuron_profile where site = 'mlp' order by score desc nulls last limit 3"),
    ("Every study's headline figure per checkpoint",
     "select * from fct_training_dynamics order by model, step"),
]
