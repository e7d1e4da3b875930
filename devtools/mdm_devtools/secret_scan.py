"""Find things that look like committed credentials in the repository's files.

Run by the test suite (``tests/security/test_secrets.py``) over every file git tracks or would
add, and usable before a commit::

    python -m mdm_devtools.secret_scan [PATH ...]

It flags a password in a URL (``postgresql://user:<literal>@host``), a literal assigned to a
password / secret / token setting (``password="<literal>"``, ``MDM_PG_PASSWORD=<literal>``,
``password '<literal>'`` in SQL), private keys and well-known token formats. Placeholders pass:
empty values, environment or template references (``${X}``, ``{{ env_var(...) }}``, ``{pw}``,
``:'var'``), ``change-me...``, ``PASSWORD``, ``***``, ``<...>``. A line that deliberately holds a
fake value (a test of a wrong password) carries the marker ``pragma: allowlist secret``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ALLOW_MARKER = "pragma: allowlist secret"
MAX_BYTES = 2_000_000

_KEY = r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api_key|apikey|access_key)\b"
_PLACEHOLDER = re.compile(
    r"""^(
        |change[-_]?me.*|password|passw0rd|placeholder|example|redacted|secret|none|null|true|false
        |x{3,}|\*+|\.{3}|<[^>]*>|your[-_].*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")  # PASSWORD, PW: a name standing for the value
_REFERENCE = re.compile(r"\$\{|\$[A-Za-z_]|\{\{|\{[A-Za-z_][^}]*\}|%\(|%s|^:'|^:[A-Za-z_]|env_var\(|getenv|environ")

# which files a rule reads: ANY; CONFIG everything but Python; YAML; NOT_SQL (psql's `password :'VAR'`)
ANY, CONFIG, YAML, NOT_SQL = "any", "config", "yaml", "not_sql"
RULES: list[tuple[str, str, re.Pattern[str]]] = [
    # scheme://user:password@host -- group "value" is the password
    ("password in a URL", ANY, re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"`]+:(?P<value>[^\s@'\"`/]+)@")),
    # password = "<literal>" (Python, YAML, JSON, TOML), with an optional type annotation
    (
        "literal password",
        NOT_SQL,
        re.compile(
            rf"(?i)[\"']?\b{_KEY}[\"']?\s*(?::\s*[\w\[\]|. ]+?\s*)?[:=]\s*(?P<q>[\"'])(?P<value>[^\"'\n]*)(?P=q)"
        ),
    ),
    # KEY=value in env files, Dockerfiles and shell (unquoted)
    ("literal password", CONFIG, re.compile(rf"(?i)^\s*(?:export\s+|ENV\s+)?{_KEY}\s*=\s*(?P<value>[^\s\"'#]+)")),
    # key: value in YAML (unquoted)
    ("literal password", YAML, re.compile(rf"(?i)^\s*-?\s*{_KEY}\s*:\s*(?P<value>[^\s\"'#|>][^\s#]*)")),
    # a default= literal on a line about a password (argparse, click)
    (
        "literal password default",
        ANY,
        re.compile(r"(?i)password.*\bdefault\s*=\s*(?P<q>[\"'])(?P<value>[^\"'\n]*)(?P=q)"),
    ),
    # SQL: password '<literal>'
    ("literal password in SQL", ANY, re.compile(r"(?i)\bpassword\s+'(?P<value>[^'\n]*)'")),
    (
        "private key",
        ANY,
        re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY(?: BLOCK)?-----(?P<value>)"),
    ),
    ("AWS access key", ANY, re.compile(r"\b(?P<value>AKIA[0-9A-Z]{16})\b")),
    ("GitHub token", ANY, re.compile(r"\b(?P<value>gh[pousr]_[A-Za-z0-9]{36,})\b")),
    ("Slack token", ANY, re.compile(r"\b(?P<value>xox[abprs]-[A-Za-z0-9-]{10,})\b")),
]
_ALWAYS = {"private key", "AWS access key", "GitHub token", "Slack token"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.text}"


def is_placeholder(value: str) -> bool:
    value = value.strip()
    return bool(_PLACEHOLDER.match(value) or _CONSTANT.match(value) or _REFERENCE.search(value))


def _kinds(path: str) -> set[str]:
    if path.endswith((".py", ".pyi")):
        return {ANY, NOT_SQL}
    if path.endswith((".yml", ".yaml")):
        return {ANY, NOT_SQL, CONFIG, YAML}
    if path.endswith(".sql"):
        return {ANY, CONFIG}
    return {ANY, NOT_SQL, CONFIG}


def scan_text(text: str, path: str = "<text>") -> list[Finding]:
    findings = []
    kinds = _kinds(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if ALLOW_MARKER in line:
            continue
        for rule, kind, pattern in RULES:
            if kind not in kinds:
                continue
            for match in pattern.finditer(line):
                value = match.group("value")
                if rule in _ALWAYS or not is_placeholder(value):
                    shown = line.strip().replace(value, "<redacted>") if value else line.strip()
                    findings.append(Finding(path, number, rule, shown[:200]))
                    break
    return findings


def repository_files(root: Path) -> list[Path]:
    """Files git tracks plus new files it would add (not ignored); every file if ``root`` is no
    git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        names = sorted({n for n in out.decode().split("\0") if n})
        return [root / n for n in names if (root / n).is_file()]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", ".mdm", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"}
        return sorted(p for p in root.rglob("*") if p.is_file() and not skip & set(p.relative_to(root).parts))


def scan_files(root: Path, files: list[Path] | None = None) -> list[Finding]:
    findings = []
    for path in files if files is not None else repository_files(root):
        try:
            data = path.read_bytes()[:MAX_BYTES]
        except OSError:
            continue
        if b"\0" in data[:8192]:  # binary
            continue
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        findings += scan_text(data.decode("utf-8", errors="replace"), rel)
    return findings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path.cwd()
    files = [Path(a).resolve() for a in args] if args else None
    findings = scan_files(root, files)
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
