{%- set contract = ciq_settings() -%}

with

staged as (

    select * from {{ ref('stg_loader__records') }}

),

cleaned as (

    select
        {%- for column in contract.columns %}
        {{ ciq_clean_column(column) }} as {{ adapter.quote(column.name) }},
        {%- endfor %}
        _run_date,
        _batch_id,
        _source_file,
        _source_row

    from staged

),

versioned as (

    -- one row per primary key: the latest wins (latest time, then run date, batch, file, row)
    select
        *,
        row_number() over (
            partition by {% for name in contract.primary_key %}{{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor %}
            order by
                {%- if contract.time_col and contract.time_col not in contract.primary_key %}
                {{ adapter.quote(contract.time_col) }} desc nulls last,
                {%- endif %}
                {{ ciq_binary_order('_run_date') }} desc,
                {{ ciq_binary_order('_batch_id') }} desc,
                {{ ciq_binary_order('_source_file') }} desc,
                _source_row desc
        ) as version_rank

    from cleaned

),

latest as (

    select
        {%- for column in contract.columns %}
        {{ adapter.quote(column.name) }},
        {%- endfor %}
        _run_date,
        _batch_id,
        _source_file,
        _source_row

    from versioned
    where version_rank = 1

)

select * from latest
