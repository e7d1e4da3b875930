-- The cross-database macros (macros/cross_db.sql) give the expected value for every case, on
-- whichever warehouse this runs: dbt build runs it on DuckDB and on PostgreSQL alike, so the two
-- implementations cannot drift apart. Returns the cases that fail.
-- (`-- noqa: AL05`: the alias of each VALUES list is what names its columns.)

with

text_cases as (

    select
        input_value,
        expected
    from (
        values
        ('  王' || chr(12288) || '伟 ', '王 伟'),
        (chr(12288), null),
        (chr(9) || 'x' || chr(10), 'x'),
        ('', null),
        ('x' || chr(12288) || chr(12288) || 'y', 'x  y'),
        (null, null)
    ) as cases (input_value, expected)  -- noqa: AL05

),

timestamp_cases as (

    select
        input_value,
        input_format,
        cast(expected as timestamp) as expected
    from (
        values
        ('2026-11-20 13:05:00', 'iso', '2026-11-20 13:05:00'),
        ('2026-1-5 09:05:00', 'iso', '2026-01-05 09:05:00'),
        ('2024-02-29 23:59:59', 'iso', '2024-02-29 23:59:59'),
        ('2026-02-29 10:00:00', 'iso', null),
        ('2026-04-31 10:00:00', 'iso', null),
        ('2026-11-20 24:00:00', 'iso', null),
        ('2026-11-20 13:60:00', 'iso', null),
        ('2026-11-20', 'iso', null),
        ('0000-01-01 00:00:00', 'iso', null),
        ('garbage', 'iso', null),
        (null, 'iso', null),
        ('19900307', 'compact', '1990-03-07 00:00:00'),
        ('1990-03-07', 'compact', null),
        ('1990年3月7日', 'chinese', '1990-03-07 00:00:00'),
        ('1990年13月7日', 'chinese', null),
        ('20260230', 'compact', null),
        ('20240229', 'compact', '2024-02-29 00:00:00'),
        ('31/04/2026', 'dmy', null),
        ('29/2/2024', 'dmy', '2024-02-29 00:00:00'),
        ('29/02/2023', 'dmy', null),
        ('7/3/1990', 'dmy', '1990-03-07 00:00:00')
    ) as cases (input_value, input_format, expected)  -- noqa: AL05

),

local_cases as (

    select
        input_value,
        cast(expected as timestamp) as expected
    from (
        values
        ('2026-11-20 13:05:00', '2026-11-20 13:05:00'),
        ('2026/3/7 9:05', '2026-03-07 09:05:00'),
        ('2026-11-20T13:05:00.25', '2026-11-20 13:05:00.25'),
        ('2026-11-20', '2026-11-20 00:00:00'),
        ('2026-02-30 10:00:00', null),
        ('2026/04/31 10:00', null),
        ('2100-02-29', null),
        ('2000-02-29 12:00', '2000-02-29 12:00:00'),
        ('2026-11-20 13:05:00.1234567', null),
        ('2026-11-20 13:05:00+08:00', null),
        ('20261120', null)
    ) as cases (input_value, expected)  -- noqa: AL05

),

utc_cases as (

    select
        input_value,
        kind,
        cast(expected as timestamp) as expected
    from (
        values
        ('2026-11-20T13:05:00+08:00', 'iso', '2026-11-20 05:05:00'),
        ('2026-11-20T05:05:00Z', 'iso', '2026-11-20 05:05:00'),
        ('2026-11-20T00:30:00-05:00', 'iso', '2026-11-20 05:30:00'),
        ('2026-11-20T13:05:00.123456789+0530', 'iso', '2026-11-20 07:35:00.123456'),
        ('2026-11-20T13:05+08', 'iso', '2026-11-20 05:05:00'),
        ('2026-11-20 13:05:00', 'iso', '2026-11-20 05:05:00'),
        ('2026-01-01T02:00:00+08:00', 'iso', '2025-12-31 18:00:00'),
        ('2026-02-29T10:00:00+08:00', 'iso', null),
        ('2026-11-20T13:05:00+08:00x', 'iso', null),
        ('2026-11-20 13:05:00 Z', 'iso', '2026-11-20 13:05:00'),
        ('2026-1-20T13:05:00Z', 'iso', null),
        ('2026-11-20T13:05:00,5+08:00', 'iso', '2026-11-20 05:05:00.5'),
        ('2024-02-29T23:00:00-01:00', 'iso', '2024-03-01 00:00:00'),
        ('2026-11-20+08:00', 'iso', null),
        ('1763600000123', 'epoch_ms', '2025-11-20 00:53:20.123'),
        ('1763600000123.0', 'epoch_ms', '2025-11-20 00:53:20.123'),
        ('0', 'epoch_ms', '1970-01-01 00:00:00'),
        ('-1000', 'epoch_ms', '1969-12-31 23:59:59'),
        ('1.7636e12', 'epoch_ms', null),
        ('not-a-number', 'epoch_ms', null),
        ('2026-11-20 08:00:00', 'local', '2026-11-20 00:00:00'),
        ('2026-11-20 13:05:00+08:00', 'any', '2026-11-20 05:05:00'),
        ('2026/11/20 13:05', 'any', '2026-11-20 05:05:00'),
        ('1763600000123', 'any', '2025-11-20 00:53:20.123'),
        ('yesterday', 'any', null)
    ) as cases (input_value, kind, expected)  -- noqa: AL05

),

numeric_cases as (

    select
        input_value,
        cast(expected as numeric(18, 2)) as expected
    from (
        values
        ('199.90', '199.90'),
        ('-99.5', '-99.50'),
        ('12.345', '12.35'),
        ('-0.005', '-0.01'),
        ('+.5', '0.50'),
        ('12.', '12.00'),
        ('999999999999999.99', '999999999999999.99'),
        ('9999999999999999', null),
        ('1,234.00', null),
        ('1e3', null),
        ('12元', null),
        ('.', null),
        (null, null)
    ) as cases (input_value, expected)  -- noqa: AL05

),

bigint_cases as (

    select
        input_value,
        cast(expected as bigint) as expected
    from (
        values
        ('42', '42'),
        ('-7', '-7'),
        ('+7', '7'),
        ('1.5', null),
        ('9999999999999999999', null),
        ('x', null)
    ) as cases (input_value, expected)  -- noqa: AL05

),

results as (

    select
        'clean_text' as macro_name,
        input_value,
        expected as expected_text,
        {{ clean_text('input_value') }} as actual_text,
        ({{ clean_text('input_value') }} is distinct from expected) as failed
    from text_cases

    union all

    select
        'clean_code' as macro_name,
        input_value,
        expected as expected_text,
        {{ clean_code('input_value') }} as actual_text,
        ({{ clean_code('input_value') }} is distinct from expected) as failed
    from (
        values
        (' REFUNDED ', 'refunded'),
        ('WeChat', 'wechat'),
        ('Ｐａｉｄ', 'Ｐａｉｄ'),
        ('Card_No', 'card_no')
    ) as cases (input_value, expected)  -- noqa: AL05

    union all

    select
        'safe_cast_timestamp:' || input_format as macro_name,
        input_value,
        cast(expected as {{ dbt.type_string() }}) as expected_text,
        cast(actual as {{ dbt.type_string() }}) as actual_text,
        (actual is distinct from expected) as failed
    from (
        select
            input_value,
            input_format,
            expected,
            case input_format
                when 'iso' then {{ safe_cast_timestamp('input_value', '%Y-%m-%d %H:%M:%S') }}
                when 'compact' then {{ safe_cast_timestamp('input_value', '%Y%m%d') }}
                when 'chinese' then {{ safe_cast_timestamp('input_value', '%Y年%m月%d日') }}
                when 'dmy' then {{ safe_cast_timestamp('input_value', '%d/%m/%Y') }}
            end as actual
        from timestamp_cases
    ) as parsed

    union all

    select
        'safe_cast_date' as macro_name,
        '1990/3/7' as input_value,
        '1990-03-07' as expected_text,
        cast({{ safe_cast_date("'1990/3/7'", '%Y/%m/%d') }} as {{ dbt.type_string() }}) as actual_text,
        ({{ safe_cast_date("'1990/3/7'", '%Y/%m/%d') }} is distinct from cast('1990-03-07' as date)) as failed

    union all

    select
        'safe_cast_local_timestamp' as macro_name,
        input_value,
        cast(expected as {{ dbt.type_string() }}) as expected_text,
        cast(actual as {{ dbt.type_string() }}) as actual_text,
        (actual is distinct from expected) as failed
    from (
        select
            input_value,
            expected,
            {{ safe_cast_local_timestamp('input_value') }} as actual
        from local_cases
    ) as parsed

    union all

    select
        'utc:' || kind as macro_name,
        input_value,
        cast(expected as {{ dbt.type_string() }}) as expected_text,
        cast(actual as {{ dbt.type_string() }}) as actual_text,
        (actual is distinct from expected) as failed
    from (
        select
            input_value,
            kind,
            expected,
            case kind
                when 'iso' then {{ safe_cast_iso8601_utc('input_value', '+08:00') }}
                when 'epoch_ms' then {{ safe_epoch_ms_to_utc('input_value') }}
                when 'local' then {{ local_to_utc(safe_cast_local_timestamp('input_value')) }}
                when 'any' then {{ safe_cast_any_utc('input_value') }}
            end as actual
        from utc_cases
    ) as parsed

    union all

    select
        'safe_cast_numeric' as macro_name,
        input_value,
        cast(expected as {{ dbt.type_string() }}) as expected_text,
        cast(actual as {{ dbt.type_string() }}) as actual_text,
        (actual is distinct from expected) as failed
    from (
        select
            input_value,
            expected,
            {{ safe_cast_numeric('input_value') }} as actual
        from numeric_cases
    ) as parsed

    union all

    select
        'safe_cast_bigint' as macro_name,
        input_value,
        cast(expected as {{ dbt.type_string() }}) as expected_text,
        cast(actual as {{ dbt.type_string() }}) as actual_text,
        (actual is distinct from expected) as failed
    from (
        select
            input_value,
            expected,
            {{ safe_cast_bigint('input_value') }} as actual
        from bigint_cases
    ) as parsed

),

final as (

    select
        macro_name,
        input_value,
        expected_text,
        actual_text
    from results
    where failed

)

select * from final
