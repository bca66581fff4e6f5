{%- set contract = ciq_settings() -%}

with

ready as (

    select * from {{ source('ciq_publish', 'causal_ready') }}

),

scores as (

    select * from {{ source('ciq_publish', 'propensity_scores') }}

),

scored as (

    -- one row per unit: the causal-ready columns with the unit's score and weight
    select
        {%- for name in contract.causal_columns %}
        ready.{{ adapter.quote(name) }},
        {%- endfor %}
        scores.propensity_score,
        scores.ipw_weight

    from ready
    left join scores
        on
        {%- for name in contract.primary_key %}
        ready.{{ adapter.quote(name) }} = scores.{{ adapter.quote(name) }}{{ " and" if not loop.last }}
        {%- endfor %}

)

select * from scored
