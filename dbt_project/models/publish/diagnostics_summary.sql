{%- set contract = ciq_settings() -%}

with

overlap as (

    select * from {{ source('ciq_publish', 'overlap_diagnostics') }}

),

balance as (

    select
        count(*) as n_balance_terms,
        count(*) filter (where is_balanced) as n_balanced_terms,
        max(abs_smd_weighted) as max_abs_smd_weighted,
        max(max_abs_smd) as max_abs_smd

    from {{ source('ciq_publish', 'covariate_balance') }}

),

published as (

    select max(published_at) as published_at

    from {{ source('ciq_publish', 'ciq_published_tables') }}

),

summary as (

    select
        cast('{{ contract.dataset }}' as text) as dataset,
        overlap.n_rows,
        overlap.n_treated,
        overlap.n_control,
        overlap.share_inside_bounds,
        overlap.min_overlap_share,
        overlap.is_overlap_sufficient,
        balance.n_balance_terms,
        balance.n_balanced_terms,
        balance.max_abs_smd_weighted,
        balance.max_abs_smd,
        balance.n_balanced_terms = balance.n_balance_terms as is_balanced,
        overlap.is_overlap_sufficient
            and balance.n_balanced_terms = balance.n_balance_terms as is_usable,
        published.published_at

    from overlap
    cross join balance
    cross join published

)

select * from summary
