{% macro log_choose(n, k) %}(lgamma(({{ n }}) + 1) - lgamma(({{ k }}) + 1) - lgamma(({{ n }}) - ({{ k }}) + 1)){% endmacro %}

{% macro log_hypergeometric(x, n_total, n_row, n_col) %}
({{ log_choose(n_row, x) }} + {{ log_choose(n_total ~ ' - ' ~ n_row, n_col ~ ' - ' ~ x) }} - {{ log_choose(n_total, n_col) }})
{%- endmacro %}

{% macro fisher_exact(relation, keys) %}
{#- Fisher's exact test of the 2 x 2 tables in `relation` (integer columns n11, n12, n21, n22;
    one table per `keys`): the two-sided p-value sums the hypergeometric probabilities of every
    table with the same margins that is no more likely than the observed one (relative tolerance
    1e-7, as scipy.stats.fisher_exact). Returns the relation's rows with `p_value` added. -#}
with margins as (
    select
        *,
        n11 + n12 + n21 + n22 as fisher_n,
        n11 + n12 as fisher_row,
        n11 + n21 as fisher_col,
        {{ log_hypergeometric('n11', '(n11 + n12 + n21 + n22)', '(n11 + n12)', '(n11 + n21)') }}
            as fisher_log_p_observed
    from {{ relation }}
),

tests as (
    select
        {{ keys | join(', ') }},
        least(1.0, sum(exp({{ log_hypergeometric('x', 'fisher_n', 'fisher_row', 'fisher_col') }}))
            filter (where {{ log_hypergeometric('x', 'fisher_n', 'fisher_row', 'fisher_col') }}
                          <= fisher_log_p_observed + ln(1 + 1e-7))) as p_value
    from margins,
        range(greatest(0, fisher_col + fisher_row - fisher_n)::bigint,
              least(fisher_row, fisher_col)::bigint + 1) as s(x)
    group by all
)

select margins.* exclude (fisher_n, fisher_row, fisher_col, fisher_log_p_observed), tests.p_value
from margins
left join tests using ({{ keys | join(', ') }})
{% endmacro %}
