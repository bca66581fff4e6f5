{% test ciq_overlap_gate(model, min_share, lower, upper) %}
    {#- Fails the build when too few propensity scores lie inside the overlap bounds. -#}
    {%- set failing -%}
        select
            'share_inside_bounds' as metric,
            share_inside_bounds as value,
            cast({{ min_share }} as double) as threshold
        from {{ model }}
        where share_inside_bounds < {{ min_share }} or n_treated = 0 or n_control = 0
    {%- endset -%}
    {%- if execute and flags.WHICH in ('build', 'test') -%}
        {%- set rows = run_query(failing) -%}
        {%- if rows | length > 0 -%}
            {{ exceptions.raise_compiler_error(
                "ciq overlap gate failed for " ~ model ~ ": share_inside_bounds = "
                ~ "%.4f" | format(rows[0]['value']) ~ " is below the minimum " ~ min_share
                ~ " (share of propensity scores inside (" ~ lower ~ ", " ~ upper ~ "), "
                ~ "or one arm is empty). The data cannot support this causal estimate: trim, "
                ~ "rethink the covariates, or lower the threshold with "
                ~ "--vars '{ciq_min_overlap_share: ...}' if you can defend it."
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ failing }}
{% endtest %}
