{#-
    Cross-database helpers: the same model SQL builds on DuckDB and on PostgreSQL.

    The project has no dbt packages (no network for `dbt deps`), so what dbt_utils would give
    lives here. Dialect-specific macros go through adapter.dispatch with default__ / duckdb__ /
    postgres__ implementations (default__ is either portable SQL or a clear compile error), and
    reuse dbt's own cross-db macros where they fit (dbt.dateadd, dbt.type_string).

    The safe_* casts return NULL instead of failing on dirty text, and both targets accept exactly
    the same inputs: a value must first match one anchored regular expression, built once in
    Jinja and evaluated by both engines (only [0-9]-style classes, never \d, so Unicode digits
    cannot sneak through on one side only). Then:
      * DuckDB uses try_strptime / try_cast (and regexp_extract, cheap in RE2);
      * PostgreSQL has no try_cast: the regex guard is completed by regexes that reject the days
        a month does not have (31 April, 30 February, 29 February outside leap years), then the
        value is cast with PostgreSQL's own parser. Capture groups (regexp_match) are avoided on
        hot paths: PostgreSQL's regex engine is ~10x slower with captures than with `~`.
    No custom PostgreSQL functions. tests/assert_cross_db_macros.sql pins the behaviour on both.
-#}


{# ======================================================================= text #}

{#- Characters trimmed from both ends of every text value: space, tab, LF, CR, no-break space,
    ideographic (full-width) space U+3000 and a stray byte-order mark U+FEFF. -#}
{% macro _trim_chars() -%}
    ' ' || chr(9) || chr(10) || chr(13) || chr(160) || chr(12288) || chr(65279)
{%- endmacro %}

{#- clean_text(expr): the value as text, full-width spaces (U+3000) turned into ordinary spaces,
    trimmed; empty -> NULL. -#}
{% macro clean_text(expr) -%}
    {{ return(adapter.dispatch('clean_text', 'customer_mdm')(expr)) }}
{%- endmacro %}

{% macro default__clean_text(expr) -%}
    nullif(trim(replace(cast({{ expr }} as {{ dbt.type_string() }}), chr(12288), ' ')), '')
{%- endmacro %}

{% macro duckdb__clean_text(expr) -%}
    nullif(trim(replace(cast({{ expr }} as varchar), chr(12288), ' '), {{ customer_mdm._trim_chars() }}), '')
{%- endmacro %}

{% macro postgres__clean_text(expr) -%}
    nullif(btrim(replace(cast({{ expr }} as text), chr(12288), ' '), {{ customer_mdm._trim_chars() }}), '')
{%- endmacro %}

{#- clean_code(expr): a code from a fixed vocabulary (status, channel ...): clean_text, ASCII letters
    lower-cased. (lower() would differ: PostgreSQL under the C collation leaves full-width letters
    alone, DuckDB lowers them; translate() behaves the same on both.) -#}
{% macro clean_code(expr) -%}
    translate({{ customer_mdm.clean_text(expr) }}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
{%- endmacro %}


{# ======================================================================= regular expressions #}

{% macro _sql_string(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{#- regex_matches(expr, pattern): true when the pattern matches (anchor it with ^...$ yourself). -#}
{% macro regex_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_matches', 'customer_mdm')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regex_matches(expr, pattern) -%}
    {{ exceptions.raise_compiler_error('regex_matches is implemented for duckdb and postgres only, not for ' ~ target.type) }}
{%- endmacro %}

{% macro postgres__regex_matches(expr, pattern) -%}
    ({{ expr }} ~ {{ customer_mdm._sql_string(pattern) }})
{%- endmacro %}

{% macro duckdb__regex_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, {{ customer_mdm._sql_string(pattern) }})
{%- endmacro %}

{#- regex_group(expr, pattern, n): capture group n of the first match, NULL when there is no
    match or the group did not take part in it. (Slow on PostgreSQL: keep it off hot paths.) -#}
{% macro regex_group(expr, pattern, n) -%}
    {{ return(adapter.dispatch('regex_group', 'customer_mdm')(expr, pattern, n)) }}
{%- endmacro %}

{% macro default__regex_group(expr, pattern, n) -%}
    {{ exceptions.raise_compiler_error('regex_group is implemented for duckdb and postgres only, not for ' ~ target.type) }}
{%- endmacro %}

{% macro postgres__regex_group(expr, pattern, n) -%}
    (regexp_match({{ expr }}, {{ customer_mdm._sql_string(pattern) }}))[{{ n }}]
{%- endmacro %}

{% macro duckdb__regex_group(expr, pattern, n) -%}
    nullif(regexp_extract({{ expr }}, {{ customer_mdm._sql_string(pattern) }}, {{ n }}), '')
{%- endmacro %}


{# ======================================================================= numbers #}

{#- safe_cast_numeric(expr, precision=18, scale=2): plain decimals such as 12, -3.5, +0.125, .5;
    anything else (1,234.00, 12元, 1e3, text) -> NULL. Rounded half away from zero on both. -#}
{% macro safe_cast_numeric(expr, precision=18, scale=2) -%}
    {{ return(adapter.dispatch('safe_cast_numeric', 'customer_mdm')(expr, precision, scale)) }}
{%- endmacro %}

{% macro _numeric_pattern(precision, scale) -%}
    {#- at most precision - scale - 1 integer digits, so rounding can never overflow -#}
    {{- '^[+-]?([0-9]{1,' ~ (precision - scale - 1) ~ '}([.][0-9]*)?|[.][0-9]+)$' -}}
{%- endmacro %}

{% macro default__safe_cast_numeric(expr, precision, scale) -%}
    case
        when {{ customer_mdm.regex_matches(expr, customer_mdm._numeric_pattern(precision, scale)) }}
            then cast({{ expr }} as numeric({{ precision }}, {{ scale }}))
    end
{%- endmacro %}

{% macro duckdb__safe_cast_numeric(expr, precision, scale) -%}
    case
        when {{ customer_mdm.regex_matches(expr, customer_mdm._numeric_pattern(precision, scale)) }}
            then try_cast({{ expr }} as decimal({{ precision }}, {{ scale }}))
    end
{%- endmacro %}

{#- safe_cast_bigint(expr): an optionally signed integer of at most 18 digits, else NULL. -#}
{% macro safe_cast_bigint(expr) -%}
    {{ return(adapter.dispatch('safe_cast_bigint', 'customer_mdm')(expr)) }}
{%- endmacro %}

{% macro default__safe_cast_bigint(expr) -%}
    case when {{ customer_mdm.regex_matches(expr, '^[+-]?[0-9]{1,18}$') }} then cast({{ expr }} as bigint) end
{%- endmacro %}

{% macro duckdb__safe_cast_bigint(expr) -%}
    case when {{ customer_mdm.regex_matches(expr, '^[+-]?[0-9]{1,18}$') }} then try_cast({{ expr }} as bigint) end
{%- endmacro %}


{# ======================================================================= intervals #}

{#- add_interval(unit, amount, ts): ts plus an integer amount (a SQL expression, may be a bigint)
    of microsecond / millisecond / second / minute / hour / day. dbt.dateadd on PostgreSQL; on
    DuckDB `interval (n) microsecond` only takes 32-bit amounts, so to_<unit>s() is used. -#}
{% macro add_interval(unit, amount, ts) -%}
    {%- if unit not in ['microsecond', 'millisecond', 'second', 'minute', 'hour', 'day'] -%}
        {{ exceptions.raise_compiler_error("add_interval: unsupported unit " ~ unit) }}
    {%- endif -%}
    {{ return(adapter.dispatch('add_interval', 'customer_mdm')(unit, amount, ts)) }}
{%- endmacro %}

{% macro default__add_interval(unit, amount, ts) -%}
    ({{ dbt.dateadd(unit, '(' ~ amount ~ ')', '(' ~ ts ~ ')') }})
{%- endmacro %}

{% macro duckdb__add_interval(unit, amount, ts) -%}
    ({{ ts }} + to_{{ unit }}s(cast({{ amount }} as bigint)))
{%- endmacro %}


{# ======================================================================= date patterns #}

{#-
    A date/time layout is a list of pieces: {'field': 'Y'|'m'|'d'|'H'|'M'|'S'} or {'re': '<regex>'}.
    _render_pieces turns it into an anchored regex; `variant` swaps the year/month/day patterns to
    build the "day does not exist" regexes. Month and day may have one digit (as strptime allows)
    unless the piece says 'fixed' or another field follows directly (then the width must be fixed
    to be unambiguous).
-#}
{% macro _field_pattern(field, fixed, variant) -%}
    {%- set z = '0' if fixed else '0?' -%}
    {%- set patterns = {
        'valid': {
            'Y': '([1-9][0-9]{3})',
            'm': '(' ~ z ~ '[1-9]|1[0-2])',
            'd': '(' ~ z ~ '[1-9]|[12][0-9]|3[01])',
        },
        'day31': {'m': '(' ~ z ~ '[469]|11)', 'd': '(31)'},
        'feb30': {'m': '(' ~ z ~ '2)', 'd': '(3[01])'},
        'feb29': {'m': '(' ~ z ~ '2)', 'd': '(29)'},
        'feb29_leap': {
            'Y': '([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)',
            'm': '(' ~ z ~ '2)',
            'd': '(29)',
        },
    } -%}
    {%- set others = {'H': '([01][0-9]|2[0-3])', 'M': '([0-5][0-9])', 'S': '([0-5][0-9])'} -%}
    {%- if field in patterns[variant] -%}
        {{ return(patterns[variant][field]) }}
    {%- elif field in patterns['valid'] -%}
        {{ return(patterns['valid'][field]) }}
    {%- else -%}
        {{ return(others[field]) }}
    {%- endif -%}
{%- endmacro %}

{% macro _render_pieces(pieces, variant='valid') -%}
    {%- set state = namespace(regex='^') -%}
    {%- for piece in pieces -%}
        {%- if 'field' in piece -%}
            {%- set fixed = piece.get('fixed', false) or (loop.nextitem is defined and 'field' in loop.nextitem) -%}
            {%- set state.regex = state.regex ~ customer_mdm._field_pattern(piece['field'], fixed, variant) -%}
        {%- else -%}
            {%- set state.regex = state.regex ~ piece['re'] -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(state.regex ~ '$') }}
{%- endmacro %}

{#- _strptime_pieces(format): the pieces of a strptime-style format. Supported fields: %Y %m %d
    (required) and %H %M %S; every other character is literal. -#}
{% macro _strptime_pieces(format) -%}
    {%- set state = namespace(pending=false, pieces=[], seen=[]) -%}
    {%- for ch in format -%}
        {%- if state.pending -%}
            {%- if ch not in ['Y', 'm', 'd', 'H', 'M', 'S'] or ch in state.seen -%}
                {{ exceptions.raise_compiler_error("safe_cast_timestamp: unsupported or repeated field %" ~ ch ~ " in format '" ~ format ~ "' (use %Y %m %d %H %M %S once each)") }}
            {%- endif -%}
            {%- do state.pieces.append({'field': ch}) -%}
            {%- do state.seen.append(ch) -%}
            {%- set state.pending = false -%}
        {%- elif ch == '%' -%}
            {%- set state.pending = true -%}
        {%- elif ch in '.*+?()[]{}|$/-' -%}
            {%- do state.pieces.append({'re': '[' ~ ch ~ ']'}) -%}
        {%- elif ch in '^\\' -%}
            {%- do state.pieces.append({'re': '\\' ~ ch}) -%}
        {%- else -%}
            {%- do state.pieces.append({'re': ch}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for required in ['Y', 'm', 'd'] -%}
        {%- if required not in state.seen -%}
            {{ exceptions.raise_compiler_error("safe_cast_timestamp: format '" ~ format ~ "' needs %Y, %m and %d") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(state.pieces) }}
{%- endmacro %}

{#- The local wall-clock layout of the sources: 2026-11-20 13:05:00, 2026/11/20 13:05,
    2026-1-5 9:05:00, 2026-11-20T13:05:00.5, 2026-11-20. Groups: 1 Y, 2 m, 3 d, 4 H, 5 M, 6 S, 7 fraction. -#}
{% macro _local_pieces() -%}
    {{ return([
        {'field': 'Y'}, {'re': '[-/]'}, {'field': 'm'}, {'re': '[-/]'}, {'field': 'd'},
        {'re': '(?:[Tt ]([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:[.,]([0-9]{1,6}))?)?)?'},
    ]) }}
{%- endmacro %}

{#- ISO 8601: 2026-11-20T13:05:00+08:00, 2026-11-20 05:05:00.123Z, 2026-11-20T13:05+0800,
    2026-11-20 (midnight). An offset needs a time. Groups: 1 Y, 2 m, 3 d, 4 H, 5 M, 6 S, 7 fraction
    (up to 9 digits, cut to microseconds), 8 offset. -#}
{% macro _iso8601_pieces() -%}
    {{ return([
        {'field': 'Y'}, {'re': '-'}, {'field': 'm', 'fixed': true}, {'re': '-'}, {'field': 'd', 'fixed': true},
        {'re': '(?:[Tt ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:[.,]([0-9]{1,9}))?)?(?: ?(Z|z|[+-][01][0-9](?::?[0-5][0-9])?))?)?'},
    ]) }}
{%- endmacro %}

{#- _date_exists(expr, pieces): true when expr matches the layout AND the day exists in its month.
    Plain `~` regexes only (fast on PostgreSQL); used as the guard before PostgreSQL casts. -#}
{% macro _date_exists(expr, pieces) -%}
    (
        {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces, 'valid')) }}
        and not {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces, 'day31')) }}
        and not {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces, 'feb30')) }}
        and (
            not {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces, 'feb29')) }}
            or {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces, 'feb29_leap')) }}
        )
    )
{%- endmacro %}


{# ======================================================================= timestamps #}

{#- safe_cast_timestamp(expr, format='%Y-%m-%d %H:%M:%S'): a timestamp without time zone parsed
    with a strptime-style format (%Y %m %d, optional %H %M %S; other characters literal, e.g.
    '%Y年%m月%d日'); NULL for anything that does not fit or is not a real date. -#}
{% macro safe_cast_timestamp(expr, format='%Y-%m-%d %H:%M:%S') -%}
    {{ return(adapter.dispatch('safe_cast_timestamp', 'customer_mdm')(expr, format)) }}
{%- endmacro %}

{% macro default__safe_cast_timestamp(expr, format) -%}
    {{ exceptions.raise_compiler_error('safe_cast_timestamp is implemented for duckdb and postgres only, not for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__safe_cast_timestamp(expr, format) -%}
    {%- set pieces = customer_mdm._strptime_pieces(format) -%}
    case
        when {{ customer_mdm.regex_matches(expr, customer_mdm._render_pieces(pieces)) }}
            then try_strptime({{ expr }}, {{ customer_mdm._sql_string(format) }})
    end
{%- endmacro %}

{% macro postgres__safe_cast_timestamp(expr, format) -%}
    {#- Rewrite the matched value as 'Y-m-d H:M:S' with backreferences and cast it. -#}
    {%- set pieces = customer_mdm._strptime_pieces(format) -%}
    {%- set groups = {} -%}
    {%- for piece in pieces if 'field' in piece -%}
        {%- do groups.update({piece['field']: '\\' ~ loop.index}) -%}
    {%- endfor -%}
    {%- set canonical = groups['Y'] ~ '-' ~ groups['m'] ~ '-' ~ groups['d'] ~ ' '
        ~ groups.get('H', '00') ~ ':' ~ groups.get('M', '00') ~ ':' ~ groups.get('S', '00') -%}
    case
        when {{ customer_mdm._date_exists(expr, pieces) }}
            then cast(regexp_replace({{ expr }}, {{ customer_mdm._sql_string(customer_mdm._render_pieces(pieces)) }}, {{ customer_mdm._sql_string(canonical) }}) as timestamp)
    end
{%- endmacro %}

{#- safe_cast_date(expr, format='%Y-%m-%d'): like safe_cast_timestamp, as a date. -#}
{% macro safe_cast_date(expr, format='%Y-%m-%d') -%}
    cast({{ customer_mdm.safe_cast_timestamp(expr, format) }} as date)
{%- endmacro %}

{#- DuckDB: a timestamp from the regex groups 1-7 (Y m d H M S fraction) of `re`, plus
    `shift_micros` (a SQL expression). try_strptime rejects days the month does not have. -#}
{% macro _duckdb_timestamp_from_groups(expr, re, shift_micros='0') -%}
    {%- set g = [] -%}
    {%- for i in range(1, 8) -%}
        {%- do g.append("regexp_extract(" ~ expr ~ ", " ~ customer_mdm._sql_string(re) ~ ", " ~ i ~ ")") -%}
    {%- endfor -%}
    (
        try_strptime(
            {{ g[0] }} || '-' || {{ g[1] }} || '-' || {{ g[2] }} || ' '
            || coalesce(nullif({{ g[3] }}, ''), '0') || ':' || coalesce(nullif({{ g[4] }}, ''), '00') || ':'
            || coalesce(nullif({{ g[5] }}, ''), '00'),
            '%Y-%m-%d %H:%M:%S'
        )
        + to_microseconds(
            cast(left(rpad({{ g[6] }}, 6, '0'), 6) as bigint) + ({{ shift_micros }})
        )
    )
{%- endmacro %}

{#- safe_cast_local_timestamp(expr): a source's local wall-clock time (see _local_pieces) as a
    timestamp without time zone, still local. NULL for anything else. -#}
{% macro safe_cast_local_timestamp(expr) -%}
    {{ return(adapter.dispatch('safe_cast_local_timestamp', 'customer_mdm')(expr)) }}
{%- endmacro %}

{% macro default__safe_cast_local_timestamp(expr) -%}
    {{ exceptions.raise_compiler_error('safe_cast_local_timestamp is implemented for duckdb and postgres only, not for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__safe_cast_local_timestamp(expr) -%}
    {%- set re = customer_mdm._render_pieces(customer_mdm._local_pieces()) -%}
    case
        when {{ customer_mdm.regex_matches(expr, re) }}
            then {{ customer_mdm._duckdb_timestamp_from_groups(expr, re) }}
    end
{%- endmacro %}

{% macro postgres__safe_cast_local_timestamp(expr) -%}
    case
        when {{ customer_mdm._date_exists(expr, customer_mdm._local_pieces()) }}
            then cast(translate({{ expr }}, '/,', '-.') as timestamp)
    end
{%- endmacro %}

{#- safe_cast_iso8601_utc(expr, default_offset='+00:00'): an ISO 8601 text (see _iso8601_pieces)
    as a UTC timestamp without time zone. A value without an offset is read at default_offset.
    Sub-microsecond digits are cut. NULL for anything else. -#}
{% macro safe_cast_iso8601_utc(expr, default_offset='+00:00') -%}
    {%- if not modules.re.match('^[+-][01][0-9]:[0-5][0-9]$', default_offset) -%}
        {{ exceptions.raise_compiler_error("safe_cast_iso8601_utc: default_offset must look like +08:00, got " ~ default_offset) }}
    {%- endif -%}
    {{ return(adapter.dispatch('safe_cast_iso8601_utc', 'customer_mdm')(expr, default_offset)) }}
{%- endmacro %}

{% macro default__safe_cast_iso8601_utc(expr, default_offset) -%}
    {{ exceptions.raise_compiler_error('safe_cast_iso8601_utc is implemented for duckdb and postgres only, not for ' ~ target.type) }}
{%- endmacro %}

{% macro _offset_minutes_sql(o) -%}
    {#- minutes east of UTC of an offset text 'Z', '+08:00', '-0530', '+08' (SQL expression) -#}
    case
        when upper({{ o }}) = 'Z' then 0
        else (case when left({{ o }}, 1) = '-' then -1 else 1 end)
            * (
                cast(substr({{ o }}, 2, 2) as integer) * 60
                + case when length(replace({{ o }}, ':', '')) = 5 then cast(right({{ o }}, 2) as integer) else 0 end
            )
    end
{%- endmacro %}

{% macro _offset_minutes(offset) -%}
    {#- minutes east of UTC of a literal offset '+08:00' (a number, at compile time) -#}
    {%- set minutes = (offset[1:3] | int) * 60 + (offset[4:6] | int) -%}
    {{ return(-minutes if offset[0] == '-' else minutes) }}
{%- endmacro %}

{% macro duckdb__safe_cast_iso8601_utc(expr, default_offset) -%}
    {%- set re = customer_mdm._render_pieces(customer_mdm._iso8601_pieces()) -%}
    {%- set offset_text = "coalesce(nullif(regexp_extract(" ~ expr ~ ", " ~ customer_mdm._sql_string(re) ~ ", 8), ''), '" ~ default_offset ~ "')" -%}
    case
        when {{ customer_mdm.regex_matches(expr, re) }}
            then {{ customer_mdm._duckdb_timestamp_from_groups(expr, re, 'cast(-60000000 as bigint) * (' ~ customer_mdm._offset_minutes_sql(offset_text) ~ ')') }}
    end
{%- endmacro %}

{% macro postgres__safe_cast_iso8601_utc(expr, default_offset) -%}
    {#- cut the fraction to 6 digits (PostgreSQL would round; DuckDB cuts), ',' -> '.' -#}
    {%- set value -%}
        translate(
            case
                when {{ customer_mdm.regex_matches(expr, '[.,][0-9]{7}') }}
                    then regexp_replace({{ expr }}, '([.,][0-9]{6})[0-9]+', '\1')
                else {{ expr }}
            end,
            ',', '.'
        )
    {%- endset -%}
    case
        when {{ customer_mdm._date_exists(expr, customer_mdm._iso8601_pieces()) }}
            then case
                when length({{ expr }}) > 10 and {{ customer_mdm.regex_matches(expr, '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$') }}
                    then cast({{ value }} as timestamptz) at time zone 'UTC'
                else {{ customer_mdm.add_interval('minute', -1 * customer_mdm._offset_minutes(default_offset), 'cast(' ~ value ~ ' as timestamp)') }}
            end
    end
{%- endmacro %}

{#- safe_epoch_ms_to_utc(expr): epoch milliseconds (a decimal part is cut) as a UTC timestamp
    without time zone; NULL for anything else. -#}
{% macro safe_epoch_ms_to_utc(expr) -%}
    case
        when {{ customer_mdm.regex_matches(expr, '^-?[0-9]{1,14}([.][0-9]*)?$') }}
            then {{ customer_mdm.add_interval(
                'millisecond',
                'cast(split_part(' ~ expr ~ ", '.', 1) as bigint)",
                "cast('1970-01-01 00:00:00' as timestamp)"
            ) }}
    end
{%- endmacro %}

{#- source_utc_offset(): the offset of the sources' local time, '+08:00' (var source_utc_offset). -#}
{% macro source_utc_offset() -%}
    {%- set offset = var('source_utc_offset', '+08:00') | string -%}
    {%- if not modules.re.match('^[+-][01][0-9]:[0-5][0-9]$', offset) -%}
        {{ exceptions.raise_compiler_error("var source_utc_offset must look like +08:00, got " ~ offset) }}
    {%- endif -%}
    {{ return(offset) }}
{%- endmacro %}

{#- local_to_utc(ts, offset=source_utc_offset()): a local wall-clock timestamp to UTC
    (local - offset). Asia/Shanghai (the reference sources) is UTC+8 all year. -#}
{% macro local_to_utc(ts, offset=none) -%}
    {%- set offset = offset or customer_mdm.source_utc_offset() -%}
    {{ customer_mdm.add_interval('minute', -1 * customer_mdm._offset_minutes(offset), ts) }}
{%- endmacro %}

{#- safe_cast_any_utc(expr): a timestamp of a feed whose contract fixes no layout, as UTC:
    ISO 8601 (no offset = the sources' local offset), a local YYYY/MM/DD time, or epoch ms. -#}
{% macro safe_cast_any_utc(expr) -%}
    coalesce(
        {{ customer_mdm.safe_cast_iso8601_utc(expr, customer_mdm.source_utc_offset()) }},
        {{ customer_mdm.local_to_utc(customer_mdm.safe_cast_local_timestamp(expr)) }},
        {{ customer_mdm.safe_epoch_ms_to_utc(expr) }}
    )
{%- endmacro %}


{# ======================================================================= keys #}

{#- row_key(parts): a readable surrogate key, the parts joined with ':' (NULL parts as ''). -#}
{% macro row_key(parts) -%}
    {%- set items = [] -%}
    {%- for p in parts -%}
        {%- do items.append('coalesce(cast(' ~ p ~ ' as ' ~ dbt.type_string() ~ "), '')") -%}
    {%- endfor -%}
    {{ items | join(" || ':' || ") }}
{%- endmacro %}
