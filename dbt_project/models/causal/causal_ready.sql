{%- set contract = ciq_settings() -%}

with

curated as (

    select * from {{ ref('cur_records') }}

),

causal_columns as (

    -- id, time, treatment, outcome and covariates only: nothing else can leak into a model
    select
        {%- for name in contract.causal_columns %}
        {{ adapter.quote(name) }}{{ "," if not loop.last }}
        {%- endfor %}

    from curated

)

select * from causal_columns
