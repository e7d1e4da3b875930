{#-
    SQL standardisation shared by the intermediate models (portable: DuckDB and PostgreSQL).
    Python-side standardisation (phones, names, dates, regions) lives in the std.* lookup tables
    built by customer_mdm.standardize.step; std_key() must build the same key as its
    key_expression() for multi-column lookups.
-#}

{% macro std_key(columns) -%}
    {%- set parts = [] -%}
    {%- for c in columns -%}
        {%- do parts.append("coalesce(" ~ c ~ ", '')") -%}
    {%- endfor -%}
    {{ parts | join(" || '|' || ") }}
{%- endmacro %}

{#- email_clean(expr): lower case, every space removed, full-width @ and 。 turned ASCII. -#}
{% macro email_clean(expr) -%}
    nullif(
        replace(replace(replace(replace(replace(lower({{ expr }}), ' ', ''), chr(9), ''), chr(12288), ''), '＠', '@'), '。', '.'),
        ''
    )
{%- endmacro %}

{#- email_is_valid(expr): one @, a plausible local part and a domain with a TLD. -#}
{% macro email_is_valid(expr) -%}
    coalesce({{ customer_mdm.regex_matches(expr, '^[a-z0-9._%+-]+@[a-z0-9-]+([.][a-z0-9-]+)*[.][a-z]{2,}$') }}, false)
{%- endmacro %}

{#- company_clean(expr): ASCII brackets, no spaces. -#}
{% macro company_clean(expr) -%}
    nullif(replace(replace(replace(replace({{ expr }}, '（', '('), '）', ')'), ' ', ''), chr(12288), ''), '')
{%- endmacro %}

{#- company_std(expr): bracketed city prefixes/suffixes removed, 有限责任公司 -> 有限公司. -#}
{% macro company_std(expr) -%}
    nullif(replace(regexp_replace({{ expr }}, '[(][^)]*[)]', '', 'g'), '有限责任公司', '有限公司'), '')
{%- endmacro %}

{#- company_key(expr): company_std without its legal form, for matching. -#}
{% macro company_key(expr) -%}
    nullif(
        regexp_replace(
            lower({{ expr }}),
            '(股份有限公司|有限公司|股份公司|集团有限公司|集团公司|集团|公司|co[.,]*ltd[.]?|ltd[.]?|inc[.]?|limited)$',
            '',
            'g'
        ),
        ''
    )
{%- endmacro %}
