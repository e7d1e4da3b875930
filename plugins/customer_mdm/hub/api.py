"""The ``/v1`` routes of the hub contract (/work/shared/contracts/hub-api.md, docs/hub.md).

Reads go to the serving tables (:class:`customer_mdm.hub.serving.ServingReader`), writes to the
hub store (:mod:`customer_mdm.hub.store`); every call that reads or writes personal data appends
a row to ``hub.access_log`` with the token's name. Routes are plain ``def`` functions: FastAPI
runs them in its thread pool, each thread with its own store connection.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from customer_mdm import plan
from customer_mdm.hub.auth import Principal, require
from customer_mdm.hub.errors import ApiError, invalid, not_found
from customer_mdm.hub.serving import ServingReader
from customer_mdm.hub.standardise import clean_text, standard_email, standard_mobile
from customer_mdm.hub.store import SCHEMA, Store, now, record_access

router = APIRouter(prefix="/v1")

#: the person sources of the plan (a record is looked up by source and id)
SOURCES = tuple(plan.person_sources())
#: sources a self-service change can be filed against (the self_service feed's source_system)
SELF_SERVICE_SOURCES = ("crm", "ecommerce", "store_pos")
CHANGE_FIELDS = ("mobile", "email", "address", "province", "city", "district", "consent_marketing")
IDENTIFIER_TYPES = ("mobile", "email", "crm_id", "member_id", "card_no")
_CONSENT = {
    "true": "true",
    "false": "false",
    "yes": "true",
    "no": "false",
    "1": "true",
    "0": "false",
    "granted": "true",
    "withdrawn": "false",
    "y": "true",
    "n": "false",
    "是": "true",
    "否": "false",
}
#: golden attribute -> the dim_customer column naming its source record
ATTRIBUTES = {
    "name": "name_source_record",
    "gender": "gender_source_record",
    "birth_date": "birth_date_source_record",
    "phone": "phone_source_record",
    "email": "email_source_record",
    "company": "company_source_record",
    "customer_type": None,
    "tier": None,
}
#: contract field of a change -> the golden attribute whose source record it is filed against
_CHANGE_ATTRIBUTE = {"mobile": "phone_source_record", "email": "email_source_record"}
_TIEBREAK = "then verified contacts, the most recent, the most complete, the record id"


def _reader(request: Request) -> ServingReader:
    return request.app.state.reader  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    from customer_mdm.hub.app import thread_store

    return thread_store(request.app)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))


def _access(request: Request, who: Principal, action: str, golden_ids: list[str | None], status: int = 200) -> None:
    record_access(_store(request), who.label, action, _route(request), status, golden_ids or [None])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _json_default(value: Any) -> Any:
    """json.dumps ``default``: dates, decimals, bytes as :func:`_jsonable`; anything else as
    FastAPI would encode it."""
    out = _jsonable(value)
    if out is value:
        from fastapi.encoders import jsonable_encoder

        return jsonable_encoder(value)
    return out


def fast_json(body: Any, status_code: int = 200) -> Response:
    """A JSON answer encoded once by :func:`json.dumps` (FastAPI's ``jsonable_encoder`` walk of
    a returned dict costs about three times as much on the hot routes)."""
    return Response(
        json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default),
        status_code=status_code,
        media_type="application/json",
    )


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row.items()}


def current_golden_id(reader: ServingReader, golden_id: str) -> str | None:
    """The golden id ``golden_id`` lives in now: itself, or (merged) the survivor it was merged
    into, following the golden-id registry; None when unknown, retired or erased."""
    seen: set[str] = set()
    gid = golden_id
    while gid and gid not in seen and len(seen) < 50:
        seen.add(gid)
        if reader.query("select 1 from serving.golden_customer where golden_id = ?", [gid]):
            return gid
        rows = reader.query("select status, merged_into from serving.golden_registry where golden_id = ?", [gid])
        if not rows or rows[0][0] != "merged" or not rows[0][1]:
            return None
        gid = str(rows[0][1])
    return None


def _resolve(request: Request, golden_id: str) -> str:
    if len(golden_id) > 128:
        raise not_found()
    current = current_golden_id(_reader(request), golden_id)
    if current is None:
        raise not_found()
    return current


# ----------------------------------------------------------------------------- match
class MatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(default=None, max_length=200)
    gender: str | None = Field(default=None, max_length=50)
    birth_date: str | None = Field(default=None, max_length=50)
    mobile: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    province: str | None = Field(default=None, max_length=100)
    city: str | None = Field(default=None, max_length=100)
    district: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=500)
    company: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=5, ge=1, le=50)


@router.post("/match")
def match(body: MatchIn, request: Request, who: Annotated[Principal, Depends(require("match"))]) -> Response:
    """Match-on-entry: candidates among the golden customers (scoring: customer_mdm.hub.matching)."""
    if not any((v or "").strip() for v in (body.name, body.mobile, body.email)):
        raise invalid("name", "at least one of name, mobile or email is required")
    from customer_mdm.hub.matching import MatcherUnavailable, MatchInputError, get_matcher

    payload = body.model_dump(exclude={"limit"}, exclude_none=True)
    try:
        result = get_matcher(_reader(request)).match(payload, body.limit)
    except MatchInputError as exc:
        raise invalid(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
    except MatcherUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    _access(request, who, "match", [c.get("golden_id") for c in result.get("candidates", [])])
    return fast_json(result)


# ----------------------------------------------------------------------------- lookup
@router.get("/lookup")
def lookup(
    request: Request,
    who: Annotated[Principal, Depends(require("read"))],
    mobile: Annotated[str | None, Query(max_length=64)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    source_id: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """Golden ids by mobile, e-mail or a source record id (inputs standardised first)."""
    reader = _reader(request)
    given = [k for k, v in (("mobile", mobile), ("email", email), ("source", source or source_id)) if v]
    if len(given) != 1:
        raise invalid("mobile", "give exactly one of mobile, email or source with source_id")
    from customer_mdm.hub.lookup import lookup_index

    if mobile:
        value = standard_mobile(mobile)
        if value is None:
            raise invalid("mobile", "not a valid phone number")
        found = lookup_index(reader).by_phone(value)
    elif email:
        value = standard_email(email, request.app.state.settings)
        if value is None:
            raise invalid("email", "not a valid e-mail address")
        found = lookup_index(reader).by_email(value)
    else:
        if source not in SOURCES:
            raise invalid("source", f"one of {', '.join(SOURCES)}")
        if not source_id or not source_id.strip():
            raise invalid("source_id", "required with source")
        found = lookup_index(reader).by_source(source, source_id.strip())
    ids = sorted(found)
    _access(request, who, "lookup", list(ids))
    return fast_json({"golden_ids": ids})


# ----------------------------------------------------------------------------- customer
def _rules(reader: ServingReader) -> dict[tuple[str, str], tuple[int, str]]:
    return reader.cached(
        "survivorship_rules",
        lambda r: {
            (str(a), str(s)): (int(t), str(k))
            for a, s, t, k in r.query("select attribute, source, trust_rank, ranking from serving.survivorship_rules")
        },
    )


def _rule_text(rules: dict[tuple[str, str], tuple[int, str]], attribute: str, record: str | None) -> str | None:
    if not record:
        return None
    source = record.split(":", 1)[0]
    rule = rules.get((attribute, source))
    if rule is None:
        return f"survivorship: no trust rank for {source}; {_TIEBREAK}"
    rank, ranking = rule
    if ranking == "latest":
        return f"survivorship: the latest explicit statement (from {source})"
    return f"survivorship: source trust ({source} rank {rank}); {_TIEBREAK}"


def golden_record(reader: ServingReader, golden_id: str) -> dict[str, Any] | None:
    """The golden record with provenance (attribute -> value, source record, rule), consent,
    contact status and source record ids; None when ``golden_id`` is not a current golden id."""
    rows = reader.query_dicts("select * from serving.golden_customer where golden_id = ?", [golden_id])
    if not rows:
        return None
    g = rows[0]
    rules = _rules(reader)
    attributes: dict[str, Any] = {}
    for attr, col in ATTRIBUTES.items():
        record = g.get(col) if col else None
        attributes[attr] = {
            "value": _jsonable(g.get(attr)),
            "source_record": record,
            "rule": _rule_text(rules, attr, record) if col else "survivorship: the most trusted source's value",
        }
    address_record = g.get("address_source_record")
    attributes["address"] = {
        "value": {k: g.get(k) for k in ("province", "city", "district", "street")},
        "source_record": address_record,
        "rule": _rule_text(rules, "address", address_record),
    }
    consent_record = g.get("consent_marketing_source_record")
    records = sorted(
        str(r[0]) for r in reader.query("select record_id from serving.customer_xref where golden_id = ?", [golden_id])
    )
    return {
        "golden_id": golden_id,
        "attributes": attributes,
        "consent": {
            "marketing": {
                "status": g.get("consent_marketing"),
                "source": g.get("consent_marketing_source"),
                "source_record": consent_record,
                "stated_at": _jsonable(g.get("consent_marketing_at")),
                "rule": _rule_text(rules, "consent_marketing", consent_record),
            }
        },
        "contact_status": {
            "phone": g.get("phone_status"),
            "email": g.get("email_status"),
            "needs_new_contact": _jsonable(g.get("needs_new_contact")),
        },
        "source_records": records,
        "first_seen_at_utc": _jsonable(g.get("first_seen_at_utc")),
        "last_updated_at_utc": _jsonable(g.get("last_updated_at_utc")),
    }


@router.get("/customers/{golden_id}")
def customer(golden_id: str, request: Request, who: Annotated[Principal, Depends(require("read"))]) -> Response:
    """The golden record with provenance; a merged id answers with ``current_golden_id``."""
    # a current golden id (the usual case) is read at once; else resolved through the registry
    record = golden_record(_reader(request), golden_id) if len(golden_id) <= 128 else None
    current = golden_id
    if record is None:
        current = _resolve(request, golden_id)
        record = golden_record(_reader(request), current)
    if record is None:
        raise not_found()
    record["golden_id"] = golden_id
    record["current_golden_id"] = current
    record["golden_version"] = _reader(request).status()["golden_version"]
    _access(request, who, "read", [current])
    return fast_json(record)


# ----------------------------------------------------------------------------- writes
def _body_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _idempotent(
    store: Store, table: str, key_column: str, key: str, body_hash: str, insert: Any
) -> tuple[int, dict[str, Any]]:
    """Run ``insert`` (in a transaction) unless ``key`` was seen: then 200 with the first answer,
    or 409 when that key came with another body."""
    for _attempt in (1, 2):
        rows = store.query(f"select body_sha256 from {SCHEMA}.{table} where {key_column} = ?", [key])
        if rows:
            if rows[0][0] != body_hash:
                raise ApiError(409, "conflict", f"{key_column} was already used with a different body")
            return 200, {key_column: key, "status": "accepted"}
        try:
            with store.transaction():
                insert()
            return 202, {key_column: key, "status": "accepted"}
        except Exception as exc:  # a concurrent request with the same key won the insert
            if "unique" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                raise
    raise ApiError(409, "conflict", f"{key_column} is being used concurrently")


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=128)
    field: Literal["mobile", "email", "address", "province", "city", "district", "consent_marketing"]
    new_value: str | None = Field(default=None, max_length=500)
    submitted_at: datetime | None = None


def _target_record(reader: ServingReader, golden_id: str, field: str) -> tuple[str, str] | None:
    """The source record a change is filed against: the one the golden value comes from when it
    is a self-service source, else the most trusted self-service source's record."""
    col = _CHANGE_ATTRIBUTE.get(field, "address_source_record")
    rows = reader.query(f"select {col} from serving.golden_customer where golden_id = ?", [golden_id])
    record = str(rows[0][0]) if rows and rows[0][0] else ""
    source, _, source_id = record.partition(":")
    if source in SELF_SERVICE_SOURCES and source_id:
        return source, source_id
    candidates = reader.query(
        "select source, source_id from serving.customer_xref where golden_id = ? and source in (?, ?, ?)",
        [golden_id, *SELF_SERVICE_SOURCES],
    )
    if not candidates:
        return None
    best = min(candidates, key=lambda r: (SELF_SERVICE_SOURCES.index(str(r[0])), str(r[1])))
    return str(best[0]), str(best[1])


def _validated_value(field: str, value: str | None, settings: Any) -> str | None:
    text = clean_text(value)
    if field == "mobile":
        if text is None or standard_mobile(text) is None:
            raise invalid("new_value", "not a valid mobile number")
    elif field == "email":
        if text is None or standard_email(text, settings) is None:
            raise invalid("new_value", "not a valid e-mail address")
    elif field == "consent_marketing":
        if text is None or text.lower() not in _CONSENT:
            raise invalid("new_value", "consent_marketing takes true or false")
        return _CONSENT[text.lower()]
    elif text is None:
        raise invalid("new_value", f"required for {field}")
    return text


def _utc_text(value: datetime | None) -> str:
    moment = value or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@router.post("/customers/{golden_id}/changes", status_code=202)
def change(
    golden_id: str, body: ChangeIn, request: Request, who: Annotated[Principal, Depends(require("self_service"))]
) -> JSONResponse:
    """A change the customer made: stored durably (202) and taken by the next pipeline run into
    the self_service feed; the same event_id again is 200 with the first answer, 409 if its body differs."""
    store = _store(request)
    event_id = body.event_id.strip()
    if not event_id:
        raise invalid("event_id", "must not be blank")
    payload = {"golden_id": golden_id, **body.model_dump(mode="json")}
    digest = _body_hash(payload)
    existing = store.query(f"select body_sha256 from {SCHEMA}.self_service_changes where event_id = ?", [event_id])
    if existing:  # a retry answers from the store, whatever was published since
        status, answer = _idempotent(store, "self_service_changes", "event_id", event_id, digest, lambda: None)
        _access(request, who, "change", [golden_id], status)
        return JSONResponse(answer, status_code=status)
    value = _validated_value(body.field, body.new_value, request.app.state.settings)
    current = _resolve(request, golden_id)
    target = _target_record(_reader(request), current, body.field)
    if target is None:
        raise invalid("golden_id", "the customer has no crm, ecommerce or store_pos record to file a change against")
    received = now()

    def insert() -> None:
        store.execute(
            f"insert into {SCHEMA}.self_service_changes (event_id, golden_id, source_system, source_id, field, "
            "new_value, submitted_at, received_at, principal, body_sha256, status) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            [
                event_id,
                current,
                target[0],
                target[1],
                body.field,
                value,
                _utc_text(body.submitted_at),
                received,
                who.label,
                digest,
            ],
        )

    status, answer = _idempotent(store, "self_service_changes", "event_id", event_id, digest, insert)
    _access(request, who, "change", [current], status)
    request.app.state.trigger.poke()
    return JSONResponse(answer, status_code=status)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=128)
    identifier_type: Literal["mobile", "email", "crm_id", "member_id", "card_no"]
    identifier_value: str = Field(min_length=1, max_length=320)
    requested_at: datetime | None = None


@router.post("/erasure-requests", status_code=202)
def erasure_request(
    body: ErasureIn, request: Request, who: Annotated[Principal, Depends(require("privacy"))]
) -> JSONResponse:
    """An erasure request (a row of the erasure feed): stored durably (202), handled by the next
    run's erasure step; idempotent on request_id."""
    store = _store(request)
    request_id = body.request_id.strip()
    if not request_id:
        raise invalid("request_id", "must not be blank")
    value = clean_text(body.identifier_value, 320)
    if value is None:
        raise invalid("identifier_value", "must not be blank")
    if body.identifier_type == "mobile" and standard_mobile(value) is None:
        raise invalid("identifier_value", "not a valid mobile number")
    if body.identifier_type == "email" and standard_email(value, request.app.state.settings) is None:
        raise invalid("identifier_value", "not a valid e-mail address")
    digest = _body_hash(body.model_dump(mode="json"))

    def insert() -> None:
        store.execute(
            f"insert into {SCHEMA}.erasure_requests (request_id, identifier_type, identifier_value, requested_at, "
            "received_at, principal, body_sha256, status) values (?, ?, ?, ?, ?, ?, ?, 'pending')",
            [request_id, body.identifier_type, value, _utc_text(body.requested_at), now(), who.label, digest],
        )

    status, answer = _idempotent(store, "erasure_requests", "request_id", request_id, digest, insert)
    _access(request, who, "erasure_request", [None], status)
    request.app.state.trigger.poke()
    return JSONResponse(answer, status_code=status)


# ----------------------------------------------------------------------------- due
_FIELD_NAMES = {"phone": "mobile"}


def due_fields(reader: ServingReader, golden_id: str) -> list[dict[str, Any]]:
    """Fields the freshness policy says are due (serving.field_freshness, governance_field_freshness)."""
    rows = reader.query_dicts(
        "select field, due_date, last_confirmed_at_utc, confirmed_by, review_interval_days, rule "
        "from serving.field_freshness where golden_id = ? and not within_policy order by due_date, field",
        [golden_id],
    )
    out = []
    for r in rows:
        confirmed = r.get("last_confirmed_at_utc")
        if confirmed is None:
            reason = "never confirmed"
        else:
            reason = f"last confirmed {_jsonable(confirmed)[:10]} ({r.get('confirmed_by') or 'source record'})"
        if r.get("rule") == "tier_on_contact":
            reason += "; review on contact"
        else:
            reason += f"; policy: every {r.get('review_interval_days')} days"
        out.append(
            {
                "field": _FIELD_NAMES.get(str(r["field"]), str(r["field"])),
                "due_since": _jsonable(r.get("due_date")),
                "reason": reason,
            }
        )
    return out


@router.get("/customers/{golden_id}/due")
def due(golden_id: str, request: Request, who: Annotated[Principal, Depends(require("self_service"))]) -> Any:
    """The fields due for the customer to confirm or update (for a portal's sign-in prompt)."""
    current = _resolve(request, golden_id)
    fields = due_fields(_reader(request), current)
    _access(request, who, "due", [current])
    return {"golden_id": golden_id, "current_golden_id": current, "fields": fields}


# ----------------------------------------------------------------------------- export
def subject_export(reader: ServingReader, golden_id: str) -> dict[str, Any] | None:
    """Everything the platform holds about a person (right of access and portability): golden
    record, every source record, consent statements, orders, golden-id history."""
    record = golden_record(reader, golden_id)
    if record is None:
        return None
    sources = [
        _row(r)
        for r in reader.query_dicts(
            "select * from serving.source_records where golden_id = ? order by source, source_id", [golden_id]
        )
    ]
    changes = [
        _row(r)
        for r in reader.query_dicts(
            "select * from serving.self_service_changes where golden_id = ? order by submitted_at_utc", [golden_id]
        )
    ]
    consent = [
        {
            "source_record": f"{s.get('source')}:{s.get('source_id')}",
            "statement": s.get("consent_marketing_raw"),
            "consent_marketing": s.get("consent_marketing"),
            "recorded_at_utc": s.get("record_updated_at_utc"),
        }
        for s in sources
        if s.get("consent_marketing_raw") not in (None, "")
    ] + [
        {
            "source_record": f"{c.get('source_system')}:{c.get('source_record_id')}",
            "statement": c.get("new_value_raw"),
            "consent_marketing": c.get("new_value"),
            "recorded_at_utc": c.get("submitted_at_utc"),
            "via": "self_service",
        }
        for c in changes
        if c.get("field") == "consent_marketing"
    ]
    orders = [
        _row(r)
        for r in reader.query_dicts(
            "select * from serving.orders where golden_id = ? order by ordered_at_utc", [golden_id]
        )
    ]
    ids = {golden_id} | {
        str(r[0])
        for r in reader.query("select golden_id from serving.golden_registry where merged_into = ?", [golden_id])
    }
    marks = ", ".join("?" for _ in ids)
    history = [
        _row(r)
        for r in reader.query_dicts(
            f"select * from serving.golden_id_history where golden_id in ({marks}) or other_golden_id in ({marks})",
            [*sorted(ids), *sorted(ids)],
        )
    ]
    history.sort(key=lambda r: str(r.get("run_id") or r.get("recorded_at") or ""))
    return {
        "golden_id": golden_id,
        "exported_at": now(),
        "golden_record": record,
        "source_records": sources,
        "consent_statements": consent,
        "self_service_changes": changes,
        "orders": orders,
        "golden_id_history": history,
    }


@router.get("/customers/{golden_id}/export")
def export(golden_id: str, request: Request, who: Annotated[Principal, Depends(require("privacy"))]) -> Any:
    """The data subject's export (right of access and portability)."""
    current = _resolve(request, golden_id)
    body = subject_export(_reader(request), current)
    if body is None:
        raise not_found()
    _access(request, who, "export", [current])
    return body
