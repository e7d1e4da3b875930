"""The console's pages (``/console``): server-rendered, forms that work without JavaScript.

Reads come from the serving tables (``request.app.state.reader``, customer_mdm.hub.serving);
writes go to the hub store (sessions, actions pending the next run, worklist states). Every
page needs a signed-in user; every POST checks the session's CSRF token; customer pages are
logged in the hub store's access log as ``user:<name>``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from customer_mdm.config import Settings
from customer_mdm.console import auth
from customer_mdm.console.apply import CORRECTABLE
from customer_mdm.console.i18n import translator
from customer_mdm.console.store import Store, actions, add_action, connect_store, now, rows, t
from customer_mdm.console.tables import NAME_PREFIX_MAX
from customer_mdm.hub.store import record_access

COOKIE = "mdm_console"
HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
)
router = APIRouter(prefix="/console", include_in_schema=False)

RECORD_FIELDS = [
    "name_std",
    "gender",
    "birth_date",
    "phone_e164",
    "email",
    "province",
    "city",
    "district",
    "street",
    "company_std",
    "tier",
    "consent_marketing",
    "record_updated_at_utc",
]
WORKLIST_STATUSES = ("open", "in_progress", "done", "wont_fix")


def show(value: Any) -> str:
    """A value as shown on a page: empty for null, NaN and NaT (never ``nan``)."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, str | bytes) and pd.isna(value)):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


templates.env.filters["show"] = show


# ----------------------------------------------------------------------------- dependencies
def get_store(request: Request) -> Iterator[Store]:
    settings: Settings = request.app.state.settings
    store = connect_store(settings)
    try:
        yield store
    finally:
        store.close()


def reader(request: Request) -> Any:
    return request.app.state.reader


class SignInRequired(Exception):
    pass


def current_user(request: Request, store: Annotated[Store, Depends(get_store)]) -> auth.User:
    user = auth.session_user(store, request.cookies.get(COOKIE))
    if user is None:
        raise SignInRequired()
    request.state.principal = user.principal
    return user


StoreDep = Annotated[Store, Depends(get_store)]
UserDep = Annotated[auth.User, Depends(current_user)]
ReaderDep = Annotated[Any, Depends(reader)]


def render(request: Request, user: auth.User | None, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    lang = user.language if user else request.cookies.get("mdm_lang", "en")
    return templates.TemplateResponse(
        request,
        name,
        {"user": user, "t": translator(lang), "lang": lang, "flash": request.query_params.get("flash"), **ctx},
        status_code=status,
    )


def check_csrf(request: Request, user: auth.User, token: str | None) -> HTMLResponse | None:
    if auth.csrf_ok(user, token):
        return None
    return render(request, user, "error.html", 403, message_key="csrf")


def forbid(request: Request, user: auth.User) -> HTMLResponse:
    return render(request, user, "error.html", 403, message_key="forbidden")


def back(path: str, flash: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"/console{path}" + (f"{'&' if '?' in path else '?'}flash={flash}" if flash else ""), 303)


# ----------------------------------------------------------------------------- sign-in
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return render(request, None, "login.html")


@router.post("/login", response_model=None)
def login(
    request: Request, *, username: Annotated[str, Form()], password: Annotated[str, Form()], store: StoreDep
) -> Response:
    session_id, why = auth.authenticate(store, username, password)
    if session_id is None:
        status = 423 if why == "locked" else 401
        return render(request, None, "login.html", status, error="locked" if why == "locked" else "bad_login")
    response = RedirectResponse("/console/", 303)
    response.set_cookie(
        COOKIE, session_id, httponly=True, samesite="strict", path="/console", secure=request.url.scheme == "https"
    )
    return response


@router.post("/logout", response_model=None)
def logout(
    request: Request,
    *,
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := check_csrf(request, user, csrf_token)) is not None:
        return bad
    auth.end_session(store, request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.post("/language", response_model=None)
def language(
    request: Request,
    *,
    lang: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next_path: Annotated[str, Form()] = "/",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := check_csrf(request, user, csrf_token)) is not None:
        return bad
    auth.set_language(store, user, lang)
    return back(next_path if next_path.startswith("/") and not next_path.startswith("//") else "/")


@router.get("/", response_model=None)
def home(user: UserDep) -> Response:
    return back("/review" if user.can_act else "/governance")


# ----------------------------------------------------------------------------- review queue
def _pending_pairs(store: Store) -> set[tuple[str, str]]:
    found = store.query(
        f"select record_id_l, record_id_r from {t('console_actions')} where kind = 'decision' and status = 'pending'"
    )
    return {(str(a), str(b)) for a, b in found} | {(str(b), str(a)) for a, b in found}


def _records(rd: Any, ids: list[str], golden_ids: Sequence[Any] = ()) -> dict[str, dict[str, Any]]:
    """The source records ``ids`` (``source:source_id``) by id: first among the records of
    ``golden_ids`` (a lookup by golden id, the order ``serving.source_records`` is written in),
    the rest (a record that changed golden id since it was queued) in one scan."""
    found: dict[str, dict[str, Any]] = {}
    for gid in dict.fromkeys(str(g) for g in golden_ids if g):
        for r in rd.query_dicts("select * from serving.source_records where golden_id = ?", [gid]):
            key = f"{r['source']}:{r['source_id']}"
            if key in ids:
                found[key] = r
    missing = [rid.partition(":") for rid in ids if rid not in found]
    if missing:
        where = " or ".join("(source = ? and source_id = ?)" for _ in missing)
        rest = rd.query_dicts(
            f"select * from serving.source_records where {where}", [v for s, _, i in missing for v in (s, i)]
        )
        found.update({f"{r['source']}:{r['source_id']}": r for r in rest})
    return found


@router.get("/review", response_class=HTMLResponse)
def review(
    request: Request,
    *,
    after: int = 0,
    user: UserDep,
    store: StoreDep,
    rd: ReaderDep,
) -> HTMLResponse:
    if not user.can_act:
        return forbid(request, user)
    total = rd.query("select count(*) from serving.console_review")
    pending = _pending_pairs(store)
    queue = rd.query_dicts(
        "select * from serving.console_review where consequence_rank > ? order by consequence_rank limit 60", [after]
    )
    queue = [q for q in queue if (q["record_id_l"], q["record_id_r"]) not in pending]
    pair = queue[0] if queue else None
    left = right = None
    bars: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    if pair:
        recs = _records(rd, [pair["record_id_l"], pair["record_id_r"]], [pair["golden_id"], pair["other_golden_id"]])
        left, right = recs.get(pair["record_id_l"]), recs.get(pair["record_id_r"])
        if left and right:
            diffs = [_diff(f, show(left.get(f)), show(right.get(f))) for f in RECORD_FIELDS]
            bars = _waterfall(request, rd, left, right, pair.get("match_weight"))
    return render(
        request,
        user,
        "review.html",
        pair=pair,
        diffs=diffs,
        bars=bars,
        upcoming=queue[1:11],
        total=total[0][0] if total else 0,
        pending=len(pending) // 2,
    )


def _diff(field: str, left: str, right: str) -> dict[str, str]:
    """One row of the side-by-side view: ``diff`` when both records have different values,
    ``missing`` when only one has a value."""
    kind = "" if left == right else ("diff" if left and right else "missing")
    return {"field": field, "left": left, "right": right, "kind": kind}


def _waterfall(
    request: Request, rd: Any, left: dict[str, Any], right: dict[str, Any], weight: Any
) -> list[dict[str, Any]]:
    from customer_mdm.console.waterfall import from_matcher, waterfall

    stored = None if weight is None or show(weight) == "" else float(weight)
    ids = (f"{left['source']}:{left['source_id']}", f"{right['source']}:{right['source_id']}")
    bars: list[dict[str, Any]] | None = None
    try:
        bars = from_matcher(rd, ids[0], ids[1], stored)
    except Exception as exc:  # noqa: BLE001 - the matcher is an accelerator; the model file is the fallback
        import logging

        logging.getLogger(__name__).info("waterfall without the matcher: %s", type(exc).__name__)
    if bars is None:
        n = rd.cached(
            "console_record_count",
            lambda r: (r.query("select count(*) from serving.source_records") or [(0,)])[0][0],
        )
        try:
            bars = waterfall(
                request.app.state.settings,
                {**left, "record_key": ids[0]},
                {**right, "record_key": ids[1]},
                stored,
                int(n or 2),
            )
        except Exception as exc:  # noqa: BLE001 - no model on this host: the page works without the chart
            import logging

            logging.getLogger(__name__).warning("waterfall unavailable: %s", type(exc).__name__)
            return []
    top = max([abs(b["cumulative"]) for b in bars] + [abs(b["weight"]) for b in bars] + [1.0])
    for b in bars:
        b["width"] = round(abs(b["weight"]) / top * 45, 1)
        b["offset"] = round(50 + (min(b["cumulative"] - b["weight"], b["cumulative"]) / top) * 45, 1)
        if b.get("total"):
            b["width"] = round(abs(b["weight"]) / top * 45, 1)
            b["offset"] = round(50 + min(0.0, b["weight"]) / top * 45, 1)
    return bars


@router.post("/review/decide", response_model=None)
def decide(
    request: Request,
    *,
    record_id_l: Annotated[str, Form()],
    record_id_r: Annotated[str, Form()],
    golden_id_l: Annotated[str, Form()] = "",
    golden_id_r: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    rank: Annotated[int, Form()] = 0,
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := check_csrf(request, user, csrf_token)) is not None:
        return bad
    if not user.can_act:
        return forbid(request, user)
    if decision == "skip":  # nothing to apply; the note is kept in the action log
        add_action(
            store,
            "skip",
            user.principal,
            status="logged",
            record_id_l=record_id_l,
            record_id_r=record_id_r,
            golden_id=golden_id_l or None,
            other_golden_id=golden_id_r or None,
            note=note or None,
        )
        return back(f"/review?after={rank}")
    if decision not in ("match", "no_match"):
        return render(request, user, "error.html", 400, message_key="forbidden")
    add_action(
        store,
        "decision",
        user.principal,
        record_id_l=record_id_l,
        record_id_r=record_id_r,
        golden_id=golden_id_l or None,
        other_golden_id=golden_id_r or None,
        value=decision,
        note=note or None,
    )
    return back(f"/review?after={max(rank - 1, 0)}", "decided")


# ----------------------------------------------------------------------------- customers
def _search(rd: Any, q: str) -> list[dict[str, Any]]:
    q = q.strip()
    if not q:
        return []
    cols = "golden_id, name, phone, email, province, city, tier, source_record_count"
    if q.upper().startswith("G") and " " not in q and len(q) >= 6:
        found = rd.query_dicts(f"select {cols} from serving.golden_customer where golden_id = ?", [q])
        if found:
            return found
    if ":" in q:
        source, _, source_id = q.partition(":")
        ids = rd.query(
            "select golden_id from serving.customer_xref where source = ? and source_id = ?", [source, source_id]
        )
        if ids:
            return rd.query_dicts(f"select {cols} from serving.golden_customer where golden_id = ?", [ids[0][0]])
    # by key in serving.console_search (one lookup each, not a scan of every golden customer)
    digits = "".join(c for c in q if c.isdigit())
    also = ""
    if "@" in q:
        keys = [("email", q.lower())]
    elif len(digits) >= 7 and len(digits) >= len(q) - 4:  # the phone ends with the digits typed
        keys = [("phone", digits)] + ([("phone", "86" + digits[-11:])] if len(digits) >= 11 else [])
    else:  # the name starts with it, or the pinyin is it
        keys = [("name", q[:NAME_PREFIX_MAX]), ("pinyin", q.lower())]
        if len(q) > NAME_PREFIX_MAX:
            also, keys = " and (name like ? or lower(name_pinyin) = ?)", [*keys, ("", f"{q}%"), ("", q.lower())]
    lookups = " union ".join(
        "select golden_id from serving.console_search where kind = ? and search_key = ?" for k, _ in keys if k
    )
    params = [v for k, key in keys if k for v in (k, key)] + [key for k, key in keys if not k]
    if also:
        return rd.query_dicts(
            f"select {cols} from serving.golden_customer where golden_id in ({lookups}){also} "
            "order by golden_id limit 50",
            params,
        )
    # the ids first, then their rows by a list of values (an index lookup, not a semi-join scan)
    ids = [r[0] for r in rd.query(f"select golden_id from ({lookups}) as k order by golden_id limit 50", params)]
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return rd.query_dicts(
        f"select {cols} from serving.golden_customer where golden_id in ({marks}) order by golden_id", ids
    )


@router.get("/customers", response_class=HTMLResponse)
def customers(
    request: Request,
    *,
    q: str = "",
    user: UserDep,
    store: StoreDep,
    rd: ReaderDep,
) -> HTMLResponse:
    found = [auth.mask_row(r, user) for r in _search(rd, q)] if q else []
    if q:
        record_access(
            store, user.principal, "search", "/console/customers", 200, [r["golden_id"] for r in found] or [None]
        )
    return render(request, user, "customers.html", q=q, results=found)


@router.get("/customers/{golden_id}", response_class=HTMLResponse)
def customer(
    request: Request,
    *,
    golden_id: str,
    user: UserDep,
    store: StoreDep,
    rd: ReaderDep,
) -> HTMLResponse:
    golden = rd.query_dicts("select * from serving.golden_customer where golden_id = ?", [golden_id])
    if not golden:
        merged = rd.query("select merged_into from serving.golden_registry where golden_id = ?", [golden_id])
        if merged and merged[0][0]:
            return RedirectResponse(f"/console/customers/{quote(str(merged[0][0]))}", 303)  # type: ignore[return-value]
        return render(request, user, "error.html", 404, message_key="no_results")
    record_access(store, user.principal, "read", "/console/customers/{golden_id}", 200, [golden_id])
    g = golden[0]
    cands = rd.query_dicts(
        "select attribute, value, province, city, district, source, record_id, trust_rank, quality_rank, observed_at, "
        "contact_status, survivor_rank from serving.console_candidates where golden_id = ? "
        "order by attribute, survivor_rank",
        [golden_id],
    )
    winners = [c for c in cands if c["survivor_rank"] == 1 and c["attribute"] != "consent_marketing"]
    for c in winners:
        c["rule"] = _rule(c)
        c["value"] = auth.mask_value(c["attribute"], c["value"], user)
        c["record_id"] = auth.mask_record(c["record_id"], user)
    consent = [c for c in cands if c["attribute"] == "consent_marketing"]
    for c in consent:
        c["record_id"] = auth.mask_record(c["record_id"], user)
    records = rd.query_dicts(
        "select * from serving.source_records where golden_id = ? order by source, source_id", [golden_id]
    )
    shown_records = [
        {
            "record_id": auth.mask_record(f"{r['source']}:{r['source_id']}", user),
            **auth.mask_row({f: r.get(f) for f in RECORD_FIELDS}, user),
        }
        for r in records
    ]
    orders = rd.query_dicts(
        "select order_id, ordered_at_utc, amount_cny, status, is_refund from serving.console_orders "
        "where golden_id = ? order by ordered_at_utc desc limit 50",
        [golden_id],
    )
    segment = rd.query_dicts("select * from serving.console_segments where golden_id = ?", [golden_id])
    cols = "changed_at, event, golden_id, other_golden_id, records, detail"
    history = rd.query_dicts(  # two lookups, not one scan for "golden_id = ? or other_golden_id = ?"
        f"select * from (select {cols} from serving.golden_id_history where golden_id = ? "
        f"union all select {cols} from serving.golden_id_history where other_golden_id = ? and golden_id <> ?) as h "
        "order by changed_at desc limit 50",
        [golden_id, golden_id, golden_id],
    )
    audit_rows = rd.query_dicts(
        "select changed_at, actor, action, field, reason, run_id from serving.console_audit where golden_id = ? "
        "order by changed_at desc limit 100",
        [golden_id],
    )
    mine = actions(store, "where golden_id = ? or other_golden_id = ?", [golden_id, golden_id], limit=50)
    for a in mine:
        _mask_action(a, user)
    corrections = rd.query_dicts(
        "select attribute, value, corrected_by, corrected_at, note from serving.console_corrections "
        "where golden_id = ? order by corrected_at desc",
        [golden_id],
    )
    for c in corrections:
        c["value"] = auth.mask_value(c["attribute"], c["value"], user)
    return render(
        request,
        user,
        "customer.html",
        g=auth.mask_row(g, user),
        winners=winners,
        consent=consent,
        records=shown_records,
        orders=orders,
        segment=segment[0] if segment else None,
        history=history,
        audit=audit_rows,
        actions=mine,
        corrections=corrections,
        correctable=CORRECTABLE,
        record_fields=RECORD_FIELDS,
    )


def _mask_action(action: dict[str, Any], user: auth.User) -> None:
    action["value"] = auth.mask_value(action.get("field") or "", action.get("value"), user)
    for col in ("record_id_l", "record_id_r"):
        action[col] = auth.mask_record(action.get(col), user)


def _rule(c: dict[str, Any]) -> str:
    source = c.get("source")
    if source == "steward":
        return "steward correction (wins until the customer changes it)"
    if source == "self_service":
        return "customer's own change (self-service)"
    if c.get("contact_status") in ("bounced", "unreachable"):
        return f"{source}: only candidate left (contact {c['contact_status']})"
    return f"{source}: trust rank {show(c.get('trust_rank'))}, then most recent, then most complete"


def _steward_post(request: Request, user: auth.User, csrf_token: str) -> HTMLResponse | None:
    if (bad := check_csrf(request, user, csrf_token)) is not None:
        return bad
    if not user.can_act:
        return forbid(request, user)
    return None


@router.post("/customers/{golden_id}/correct", response_model=None)
def correct(
    request: Request,
    *,
    golden_id: str,
    attribute: Annotated[str, Form()],
    value: Annotated[str, Form()],
    record_id: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := _steward_post(request, user, csrf_token)) is not None:
        return bad
    if attribute not in CORRECTABLE or not value.strip() or len(value) > 500:
        return render(request, user, "error.html", 400, message_key="forbidden")
    add_action(
        store,
        "correction",
        user.principal,
        golden_id=golden_id,
        record_id_l=record_id,
        field=attribute,
        value=value.strip(),
        note=note or None,
    )
    return back(f"/customers/{quote(golden_id)}", "saved")


@router.post("/customers/{golden_id}/split", response_model=None)
def split(
    request: Request,
    *,
    golden_id: str,
    record_id: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := _steward_post(request, user, csrf_token)) is not None:
        return bad
    add_action(store, "split", user.principal, golden_id=golden_id, record_id_l=record_id, note=note or None)
    return back(f"/customers/{quote(golden_id)}", "saved")


@router.post("/customers/{golden_id}/merge", response_model=None)
def merge(
    request: Request,
    *,
    golden_id: str,
    other_golden_id: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
    rd: ReaderDep,
) -> Response:
    if (bad := _steward_post(request, user, csrf_token)) is not None:
        return bad
    anchors = []
    for gid in (golden_id, other_golden_id.strip()):
        found = rd.query("select min(record_id) from serving.customer_xref where golden_id = ?", [gid])
        if not found or not found[0][0]:
            return render(request, user, "error.html", 404, message_key="no_results")
        anchors.append(str(found[0][0]))
    add_action(
        store,
        "merge",
        user.principal,
        golden_id=golden_id,
        other_golden_id=other_golden_id.strip(),
        record_id_l=anchors[0],
        record_id_r=anchors[1],
        note=note or None,
    )
    return back(f"/customers/{quote(golden_id)}", "saved")


@router.get("/actions", response_class=HTMLResponse)
def my_actions(request: Request, *, user: UserDep, store: StoreDep) -> HTMLResponse:
    where, params = ("", []) if user.role == "admin" else ("where actor = ?", [user.principal])
    found = actions(store, where, params, limit=200)
    for a in found:
        _mask_action(a, user)
    return render(request, user, "actions.html", actions=found)


# ----------------------------------------------------------------------------- worklist
#: customers a team of stewards can re-verify in a week (the worklist's default view)
WEEKLY_CAPACITY = 150


def _store_states(store: Store) -> dict[str, dict[str, Any]]:
    cols = ["item_key", "assignee", "status", "note", "updated_by", "updated_at"]
    found = rows(store, f"select {', '.join(cols)} from {t('console_worklist')} where status <> 'closed'", (), cols)
    return {r["item_key"]: r for r in found}


def _worklist(
    rd: Any, store: Store, args: dict[str, str], week: bool, limit: int = 500
) -> tuple[list[dict[str, Any]], int]:
    """Worklist items, one per customer (all their due fields together: one contact re-verifies
    them), highest priority first; the week's view leaves out what is done or won't be fixed and
    stops at what a team can do in a week."""
    states = _store_states(store)
    where, params = ["1 = 1"], []
    if args.get("tier"):
        where.append("tier = ?")
        params.append(args["tier"])
    for arg, col in (("reason_code", "reasons"), ("source", "sources")):
        if args.get(arg):
            where.append(f"strpos({col}, ?) > 0")
            params.append(f",{args[arg]},")
    keep: set[str] | None = None
    if args.get("assignee"):
        keep = {k for k, st in states.items() if (st.get("assignee") or "") == args["assignee"]}
    if args.get("status") and args["status"] != "open":
        chosen = {k for k, st in states.items() if st["status"] == args["status"]}
        keep = chosen if keep is None else keep & chosen
    if keep is not None:
        if not keep:
            return [], 0
        where.append(f"golden_id in ({', '.join('?' * len(keep))})")
        params += sorted(keep)
    hidden = {k for k, st in states.items() if st["status"] in ("done", "wont_fix")}
    if (week or args.get("status") == "open") and hidden:
        where.append(f"golden_id not in ({', '.join('?' * len(hidden))})")
        params += sorted(hidden)
    grouped = (
        "select golden_id, tier, fields, field_list, trim(both ',' from reasons) as reasons, days_overdue, "
        f"priority_rank, rfm_segment, score from serving.console_worklist_customers where {' and '.join(where)}"
    )
    total = rd.query(f"select count(*) from serving.console_worklist_customers where {' and '.join(where)}", params)
    cap = min(limit, WEEKLY_CAPACITY) if week else limit
    items = rd.query_dicts(f"{grouped} order by score desc, golden_id limit {int(cap)}", params)
    for it in items:
        st = states.get(it["golden_id"], {})
        it.update({k: st.get(k) for k in ("assignee", "note", "updated_by", "updated_at")})
        it["status"] = st.get("status") or "open"
    count = int(total[0][0]) if total else 0
    return items, min(count, WEEKLY_CAPACITY) if week else count


def _closed(rd: Any, store: Store) -> list[dict[str, Any]]:
    """Items someone worked on whose cause is gone after a run (the customer is not in the
    worklist any more): closed by themselves, with the serving version that saw it."""
    states = _store_states(store)
    if not states:
        return []
    marks = ", ".join("?" * len(states))
    present = {
        r[0]
        for r in rd.query(
            f"select golden_id from serving.console_worklist_customers where golden_id in ({marks})", sorted(states)
        )
    }
    if not rd.query("select 1 from serving.console_worklist_customers limit 1"):
        return []  # no worklist built yet: nothing can be judged gone
    gone = [st for key, st in states.items() if key not in present]
    version = rd.version()
    for st in gone:
        store.execute(
            f"update {t('console_worklist')} set status = 'closed', closed_run_id = ?, updated_at = ? "
            "where item_key = ?",
            [version, now(), st["item_key"]],
        )
    return gone


@router.get("/worklist", response_model=None)
def worklist(
    request: Request,
    *,
    view: str = "week",
    fmt: str = "html",
    user: UserDep,
    store: StoreDep,
    rd: ReaderDep,
) -> Response:
    args = {
        k: v
        for k, v in request.query_params.items()
        if k in ("reason_code", "tier", "source", "assignee", "status") and v
    }
    closed = _closed(rd, store)
    items, count = _worklist(rd, store, args, view == "week", limit=100_000 if fmt == "csv" else 500)
    if fmt == "csv":
        import pandas as pd

        from customer_mdm.csv_export import neutralise_frame

        cols = [
            "golden_id",
            "tier",
            "score",
            "fields",
            "field_list",
            "reasons",
            "days_overdue",
            "rfm_segment",
            "assignee",
            "status",
            "note",
        ]
        frame = neutralise_frame(pd.DataFrame(items, columns=cols))
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        record_access(store, user.principal, "export", "/console/worklist", 200, [None])
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="worklist.csv"'},
        )
    reasons = sorted({r[0] for r in rd.query("select distinct reason_code from serving.console_worklist") if r[0]})
    sources = sorted({r[0] for r in rd.query("select distinct source from serving.console_worklist") if r[0]})
    return render(
        request,
        user,
        "worklist.html",
        items=items,
        count=count,
        view=view,
        args=args,
        reasons=reasons,
        sources=sources,
        statuses=WORKLIST_STATUSES,
        closed=closed,
        query=str(request.url.query),
    )


@router.post("/worklist/update", response_model=None)
def worklist_update(
    request: Request,
    *,
    golden_id: Annotated[str, Form()],
    status: Annotated[str, Form()] = "open",
    assignee: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    user: UserDep,
    store: StoreDep,
) -> Response:
    if (bad := _steward_post(request, user, csrf_token)) is not None:
        return bad
    if status not in WORKLIST_STATUSES or not golden_id or len(assignee) > 64 or len(note) > 500:
        return render(request, user, "error.html", 400, message_key="forbidden")
    with store.transaction():
        store.execute(f"delete from {t('console_worklist')} where item_key = ?", [golden_id])
        store.execute(
            f"insert into {t('console_worklist')} "
            "(item_key, golden_id, field, assignee, status, note, updated_by, updated_at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            [golden_id, golden_id, "*", assignee or None, status, note or None, user.principal, now()],
        )
        add_action(
            store,
            "worklist",
            user.principal,
            status="logged",
            golden_id=golden_id,
            value=status,
            note=note or None,
            detail={"assignee": assignee or None},
        )
    return back("/worklist", "saved")


# ----------------------------------------------------------------------------- governance
REPORT_FILES = {
    "scorecard": ("reports", "scorecard.html"),
}


@router.get("/governance", response_class=HTMLResponse)
def governance(request: Request, *, user: UserDep, rd: ReaderDep) -> HTMLResponse:
    from customer_mdm.console.alerts import dimension_trends

    trends = dimension_trends(rd)
    runs = rd.query_dicts("select * from serving.console_runs order by started_at desc limit 20")
    quarantine = rd.query_dicts(
        "select run_id, feed, source_file, kind, row_number, reason, quarantined_at from serving.console_quarantine "
        "order by quarantined_at desc limit 100"
    )
    settings: Settings = request.app.state.settings
    return render(
        request,
        user,
        "governance.html",
        trends=trends,
        runs=runs,
        quarantine=quarantine,
        reports=_reports(settings),
    )


def _reports(settings: Settings) -> dict[str, str]:
    """The static reports on this host a governance lead opens: Data Docs, the scorecard
    report, the dbt docs site (catalogue and lineage graph), the linkage model's charts
    (name -> path under the reports, dbt docs or models folder)."""
    found: dict[str, str] = {}
    for rel in ("data_docs/index.html", "scorecard/index.html"):
        if (settings.reports_dir / rel).is_file():
            found[rel.split("/")[0]] = f"reports/{rel}"
    if (settings.dbt_docs_dir / "index.html").is_file():  # the catalogue, regenerated after each publication
        found["dbt_docs"] = "dbt/index.html"
    for folder, prefix in (
        (settings.reports_dir / "linkage", "reports/linkage"),
        (settings.models_dir / "linkage", "models"),
    ):
        for path in sorted(folder.glob("*.html")):
            found.setdefault(path.stem, f"{prefix}/{path.name}")
    return found


def _report_path(settings: Settings, name: str) -> Path | None:
    """A file under the reports folder (``reports/...``), the dbt docs site (``dbt/...``) or the
    model charts (``models/...``), never outside them."""
    root_name, _, rel = name.partition("/")
    roots = {"reports": settings.reports_dir, "models": settings.models_dir / "linkage", "dbt": settings.dbt_docs_dir}
    root = roots.get(root_name)
    if root is None or not rel:
        return None
    base = root.resolve()
    path = (base / rel).resolve()
    if not path.is_file() or (base not in path.parents):
        return None
    return path


@router.get("/governance/file/{name:path}", response_model=None)
def report_file(request: Request, name: str, *, user: UserDep) -> Response:
    import mimetypes

    path = _report_path(request.app.state.settings, name)
    if path is None:
        return render(request, user, "error.html", 404, message_key="no_results")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), media_type=media)
