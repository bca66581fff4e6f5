{%- set contract = ciq_settings() -%}
{%- set key = [] -%}
{%- for name in contract.primary_key %}{% do key.append(adapter.quote(name)) %}{% endfor -%}
{%- set stage = ['_run_date', '_batch_id', '_stage_id'] -%}

{{
    config(
        unique_key=contract.primary_key,
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
    )
}}

with

staged as (

    select * from {{ ref('stg_loader__records') }}

),

cleaned as (

    select
        {%- for column in contract.columns %}
        {{ ciq_clean_column(column) }} as {{ adapter.quote(column.name) }},
        {%- endfor %}
        {%- for name in contract.new_columns %}
        {{ adapter.quote(name) }},
        {%- endfor %}
        _run_date,
        _batch_id,
        _stage_id,
        _source_file,
        _source_row

    from staged

),

{% if is_incremental() %}

fresh as (

    -- rows of stagings the table has not seen: new batches, restaged ones, a new `ciq load`
    select * from cleaned
    where not exists (
        select 1 from {{ this }} as merged
        where {% for name in stage %}merged.{{ name }} = cleaned.{{ name }}{{ " and " if not loop.last }}{% endfor %}
    )

),

touched_keys as (

    select distinct {{ key | join(', ') }} from fresh

),

candidates as (

    -- every staged version of a touched key, old batches included, so a backfill is exact
    select cleaned.*
    from cleaned
    inner join touched_keys using ({{ key | join(', ') }})

),

{% else %}

candidates as (

    select * from cleaned

),

{% endif %}

versioned as (

    -- one row per primary key: the latest wins (latest time, then run date, batch, file, row)
    select
        *,
        row_number() over (
            partition by {{ key | join(', ') }}
            order by
                {%- if contract.time_col and contract.time_col not in contract.primary_key %}
                {{ adapter.quote(contract.time_col) }} desc nulls last,
                {%- endif %}
                {{ ciq_binary_order('_run_date') }} desc,
                {{ ciq_binary_order('_batch_id') }} desc,
                {{ ciq_binary_order('_source_file') }} desc,
                _source_row desc
        ) as version_rank

    from candidates

),

latest as (

    select
        {%- for column in contract.columns %}
        {{ adapter.quote(column.name) }},
        {%- endfor %}
        {%- for name in contract.new_columns %}
        {{ adapter.quote(name) }},
        {%- endfor %}
        _run_date,
        _batch_id,
        _stage_id,
        _source_file,
        _source_row

    from versioned
    where version_rank = 1

)

select * from latest
