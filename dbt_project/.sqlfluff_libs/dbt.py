"""Stand-ins for dbt's cross-database macros (``{{ dbt.type_string() }}`` ...) when sqlfluff lints
the project with its plain jinja templater (see the repository's .sqlfluff). Only the shape of the
SQL matters here, not the exact types: dbt itself renders the real macros."""

_TYPES = {
    "type_string": "text",
    "type_timestamp": "timestamp",
    "type_int": "integer",
    "type_bigint": "bigint",
    "type_numeric": "numeric",
    "type_float": "double",
    "type_boolean": "boolean",
}


def concat(fields):
    return " || ".join(fields)


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + interval ({interval}) {datepart})"


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def current_timestamp():
    return "current_timestamp"


def hash(field):  # noqa: A001 - the dbt macro's name
    return f"md5(cast({field} as text))"


def __getattr__(name):
    if name in _TYPES:
        return lambda *args, **kwargs: _TYPES[name]
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda *args, **kwargs: "null"
