{%- set contract = ciq_settings() -%}

with

source as (

    select * from {{ source('loader', 'records') }}

),

renamed as (

    select
        {%- for column in contract.columns %}
        cast({{ adapter.quote(column.name) }} as {{ ciq_type(column.type) }}) as {{ adapter.quote(column.name) }},
        {%- endfor %}
        {%- for name in contract.new_columns %}
        {{ adapter.quote(name) }},  -- on_new_columns: append (text)
        {%- endfor %}
        _run_date,
        _batch_id,
        _source_file,
        -- the loader leaves _source_row null when it equals the row's position in the file
        coalesce(_source_row, file_row_number + 1) as _source_row,
        _stage_id

    from source

)

select * from renamed
