{% test ciq_balance_gate(model, max_abs_smd) %}
    {#- Fails the build when any weighted |SMD| exceeds the maximum. -#}
    {%- set failing -%}
        select
            covariate,
            level,
            'abs_smd_weighted' as metric,
            abs_smd_weighted as value,
            cast({{ max_abs_smd }} as double) as threshold
        from {{ model }}
        where abs_smd_weighted > {{ max_abs_smd }} or abs_smd_weighted is null
    {%- endset -%}
    {%- if execute and flags.WHICH in ('build', 'test') -%}
        {%- set rows = run_query(failing ~ " order by value desc nulls first") -%}
        {%- if rows | length > 0 -%}
            {%- set terms = [] -%}
            {%- for row in rows -%}
                {%- set term = row['covariate'] ~ ('=' ~ row['level'] if row['level'] is not none else '') -%}
                {%- do terms.append(term ~ " " ~ ("%.4f" | format(row['value']) if row['value'] is not none else "NaN")) -%}
            {%- endfor -%}
            {{ exceptions.raise_compiler_error(
                "ciq balance gate failed for " ~ model ~ ": abs_smd_weighted exceeds the maximum "
                ~ max_abs_smd ~ " for " ~ rows | length ~ " term(s): " ~ terms | join(", ")
                ~ ". Residual imbalance after weighting: add interactions or transformations "
                ~ "to the covariates, or restrict the sample."
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ failing }}
{% endtest %}
