{% macro ciq_clean_column(column) -%}
    {#- A column after the contract's cleaning rules: sentinels -> null, text normalised
        (trim, case, levels outside the categories -> fallback), then missing values filled. -#}
    {%- set value = adapter.quote(column.name) -%}
    {%- if column.sentinels -%}
        {%- set value = "case when " ~ value ~ " in (" ~ ciq_literals(column.sentinels) ~ ") then null else " ~ value ~ " end" -%}
    {%- endif -%}
    {%- if column.normalise -%}
        {%- if column.normalise.trim -%}{%- set value = "trim(" ~ value ~ ")" -%}{%- endif -%}
        {%- if column.normalise.case == 'upper' -%}{%- set value = "upper(" ~ value ~ ")" -%}{%- endif -%}
        {%- if column.normalise.case == 'lower' -%}{%- set value = "lower(" ~ value ~ ")" -%}{%- endif -%}
        {%- if column.normalise.fallback is not none and column.categories -%}
            {%- set value = "case when " ~ value ~ " in (" ~ ciq_literals(column.categories) ~ ") then " ~ value ~ " else " ~ ciq_literals([column.normalise.fallback]) ~ " end" -%}
        {%- elif column.normalise.fallback is not none -%}
            {%- set value = "coalesce(" ~ value ~ ", " ~ ciq_literals([column.normalise.fallback]) ~ ")" -%}
        {%- endif -%}
    {%- endif -%}
    {%- if column.fill is not none -%}
        {%- set value = "coalesce(" ~ value ~ ", " ~ ciq_literals([column.fill]) ~ ")" -%}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{% macro ciq_literals(values) -%}
    {#- A comma-separated list of SQL literals. -#}
    {%- set items = [] -%}
    {%- for value in values -%}
        {%- if value is string -%}
            {%- do items.append("'" ~ value | replace("'", "''") ~ "'") -%}
        {%- else -%}
            {%- do items.append(value | string) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(items | join(', ')) }}
{%- endmacro %}
