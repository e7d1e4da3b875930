"""Console users, sign-in, sessions, CSRF and what each role may see.

Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1) with a random 16-byte salt per user, compared
in constant time. Sessions live in the hub store (``console_sessions``): the browser holds a
random id in an ``HttpOnly``, ``SameSite=Strict`` cookie, the store only its sha256, so a copy
of the store cannot be replayed as a cookie. Each session has its own CSRF token, required in
every POST form (``csrf_token``). After :data:`MAX_FAILURES` wrong passwords in a row an account
is locked for :data:`LOCK_MINUTES` minutes (a correct password during the lock is refused too).

Roles follow the database roles (customer_mdm.security): ``steward`` reads personal data and
acts (like ``mdm_steward``); ``governance`` reads governance pages and sees customers masked
(like ``bi_reader``); ``admin`` may do everything and add users.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from customer_mdm.console.store import Store, now, rows, t
from customer_mdm.errors import MdmError

ROLES = ("steward", "governance", "admin")
#: roles that see unmasked personal data and may act on customers
STEWARD_ROLES = ("steward", "admin")
MAX_FAILURES = 5
LOCK_MINUTES = 15
SESSION_HOURS = 12
LANGUAGES = ("en", "zh")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class ConsoleError(MdmError):
    """A console user or sign-in problem a person can act on."""


def hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT).hex()


def _valid_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise ConsoleError("a user name is 1-64 letters, digits, '.', '_' or '-'")
    return name


def add_user(store: Store, name: str, role: str, password: str, language: str = "en", replace: bool = False) -> None:
    """Create (or with ``replace`` reset) a console user."""
    _valid_name(name)
    if role not in ROLES:
        raise ConsoleError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ConsoleError("a password needs at least 10 characters")
    if language not in LANGUAGES:
        raise ConsoleError(f"language must be one of {', '.join(LANGUAGES)}")
    salt = secrets.token_bytes(16)
    users = t("console_users")
    exists = store.query(f"select name from {users} where name = ?", [name])
    if exists and not replace:
        raise ConsoleError(f"user {name} exists: use --replace to reset the password and role")
    with store.transaction():
        if exists:
            store.execute(f"delete from {t('console_sessions')} where user_name = ?", [name])
            store.execute(f"delete from {users} where name = ?", [name])
        store.execute(
            f"insert into {users} (name, role, password_hash, salt, language, failed_logins, created_at, disabled) "
            "values (?, ?, ?, ?, ?, 0, ?, 0)",
            [name, role, hash_password(password, salt), salt.hex(), language, now()],
        )


@dataclass
class User:
    name: str
    role: str
    language: str
    csrf_token: str

    @property
    def principal(self) -> str:
        return f"user:{self.name}"

    @property
    def sees_pii(self) -> bool:
        return self.role in STEWARD_ROLES

    @property
    def can_act(self) -> bool:
        return self.role in STEWARD_ROLES


def authenticate(store: Store, name: str, password: str) -> tuple[str | None, str]:
    """Check a password; returns (session id, "ok") or (None, reason) with reason one of
    ``unknown``, ``locked``, ``wrong``. Failures count towards the lock."""
    users = t("console_users")
    cols = ["salt", "password_hash", "failed_logins", "locked_until"]
    found = rows(store, f"select {', '.join(cols)} from {users} where name = ? and disabled = 0", [name], cols)
    row = found[0] if found else None
    if row is None:
        hash_password(password, b"0" * 16)  # same time as a known user
        return None, "unknown"
    locked = row.get("locked_until")
    if locked is not None and str(locked) > now():
        return None, "locked"
    good = hmac.compare_digest(hash_password(password, bytes.fromhex(row["salt"])), row["password_hash"])
    if not good:
        failures = int(row["failed_logins"] or 0) + 1
        until = _later(minutes=LOCK_MINUTES) if failures >= MAX_FAILURES else None
        store.execute(
            f"update {users} set failed_logins = ?, locked_until = ? where name = ?",
            [0 if until else failures, until, name],
        )
        return None, "locked" if until else "wrong"
    store.execute(f"update {users} set failed_logins = 0, locked_until = null where name = ?", [name])
    session_id = secrets.token_urlsafe(32)
    store.execute(
        f"insert into {t('console_sessions')} (session_hash, user_name, csrf_token, created_at, expires_at) "
        "values (?, ?, ?, ?, ?)",
        [_digest(session_id), name, secrets.token_urlsafe(32), now(), _later(hours=SESSION_HOURS)],
    )
    return session_id, "ok"


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def session_user(store: Store, session_id: str | None) -> User | None:
    if not session_id:
        return None
    cols = ["csrf_token", "expires_at", "name", "role", "language"]
    found = rows(
        store,
        "select s.csrf_token, s.expires_at, u.name, u.role, u.language "
        f"from {t('console_sessions')} as s join {t('console_users')} as u on u.name = s.user_name "
        "where s.session_hash = ? and u.disabled = 0",
        [_digest(session_id)],
        cols,
    )
    row = found[0] if found else None
    if row is None or str(row["expires_at"]) < now():
        return None
    return User(row["name"], row["role"], row["language"] or "en", row["csrf_token"])


def end_session(store: Store, session_id: str | None) -> None:
    if session_id:
        store.execute(f"delete from {t('console_sessions')} where session_hash = ?", [_digest(session_id)])


def set_language(store: Store, user: User, language: str) -> None:
    if language in LANGUAGES:
        store.execute(f"update {t('console_users')} set language = ? where name = ?", [language, user.name])


def csrf_ok(user: User, token: Any) -> bool:
    return isinstance(token, str) and hmac.compare_digest(token.encode(), user.csrf_token.encode())


# ----------------------------------------------------------------------------- masking
# The same rules as the masked BI views (customer_mdm.security.mask_*), for values already read;
# tests/console/test_masking.py checks both give the same result.
def mask_phone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    s = str(value)
    return s[:6] + "****" + s[-4:] if len(s) >= 11 else "****"


def mask_email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    s = str(value)
    at = s.find("@")
    return s[0] + "***" + s[at:] if at > 0 else "***"


def mask_name(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[0] + "**"


def mask_hidden(value: Any) -> str | None:
    return None if value is None or value == "" else "***"


def mask_birth(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return f"{str(value)[:3]}0s"


#: how each personal field is shown to a user who may not see personal data
MASKS = {
    "name": mask_name,
    "name_std": mask_name,
    "name_raw": mask_name,
    "phone": mask_phone,
    "phone_e164": mask_phone,
    "email": mask_email,
    "birth_date": mask_birth,
    "street": mask_hidden,
    "company": mask_hidden,
    "name_pinyin": mask_hidden,
}
#: attribute names of golden candidates -> the mask of their value
ATTRIBUTE_MASKS = {"name": mask_name, "phone": mask_phone, "email": mask_email, "birth_date": mask_birth}


def mask_record(record_id: Any, user: User) -> Any:
    """A source record id (``crm:C000117``) names a person in a source system: a user without PII
    access sees only the system (``crm:***``), as the BI views drop source-record pointers."""
    if user.sees_pii or record_id is None or record_id == "":
        return record_id
    return str(record_id).split(":", 1)[0] + ":***"


def mask_row(row: dict[str, Any], user: User) -> dict[str, Any]:
    if user.sees_pii:
        return row
    return {k: (MASKS[k](v) if k in MASKS else v) for k, v in row.items()}


def mask_value(attribute: str, value: Any, user: User) -> Any:
    if user.sees_pii:
        return value
    if attribute in ("address", "street", "company"):
        return mask_hidden(value)
    mask = ATTRIBUTE_MASKS.get(attribute)
    return mask(value) if mask else value
