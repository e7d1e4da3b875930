"""Tests of the demo landing-zone generator (mdm_devtools.generate).

One small landing zone is generated per module and parsed once; each test checks one promise
of the contract (/work/shared/contracts/reference-sources.md) or one trap that must be present.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from customer_mdm.sources import FEEDS, PERSON_SOURCES, feed, feed_for_file, source_folders
from mdm_devtools.generate import GenerateSummary, generate_landing

N = 1500
DAYS = 3
START = date(2026, 11, 18)
BATCH_DATES = ["2026-11-18", "2026-11-19", "2026-11-20"]
ZH = r"[\u4e00-\u9fff]"


# ----------------------------------------------------------------------------- parsing helpers
@dataclass
class LandingFile:
    path: Path
    feed: str
    encoding: str  # utf-8, utf-8-sig, gb18030, parquet
    columns: list[str]
    rows: list[dict[str, object]]
    raw_keys: list[set[str]] = field(default_factory=list)  # JSONL: keys present per row


def _decode(raw: bytes) -> tuple[str, str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("gb18030"), "gb18030"


def _read(path: Path, feed_name: str) -> LandingFile:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        rows = [{k: (str(v) if v is not None else "") for k, v in r.items()} for r in table.to_pylist()]
        return LandingFile(path, feed_name, "parquet", table.column_names, rows)
    text, encoding = _decode(path.read_bytes())
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line]
        keys = [set(r) for r in rows]
        columns = sorted(set().union(*keys)) if keys else []
        return LandingFile(path, feed_name, encoding, columns, rows, keys)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return LandingFile(path, feed_name, encoding, list(reader.fieldnames or []), rows)


def _landing_files(out: Path) -> list[LandingFile]:
    files = []
    for folder in source_folders():
        for path in sorted((out / folder).iterdir()):
            f = feed_for_file(folder, path.name)
            assert f is not None, f"{path} matches no feed pattern"
            files.append(_read(path, f.name))
    return files


def _digits(value: object) -> str:
    """Phone normalisation used by the checks: ASCII digits, without the +86 / 86 prefix."""
    d = re.sub(r"\D", "", unicodedata.normalize("NFKC", str(value)))
    if len(d) == 13 and d.startswith("86"):
        d = d[2:]
    return d


def _email(value: object) -> str:
    return re.sub(r"\s+", "", str(value)).lower()


@dataclass
class Landing:
    out: Path
    summary: GenerateSummary
    files: list[LandingFile]
    truth: dict[tuple[str, str], str]
    truth_rows: list[dict[str, str]]
    people: dict[str, dict[str, str]]

    def by_feed(self, name: str) -> list[LandingFile]:
        return [f for f in self.files if f.feed == name]

    def rows(self, name: str) -> list[dict[str, object]]:
        return [r for f in self.by_feed(name) for r in f.rows]

    def values(self, name: str, column: str) -> list[str]:
        return [str(r.get(column) or "") for r in self.rows(name)]

    def person(self, source: str, source_id: object) -> str:
        return self.truth[(source, str(source_id))]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    out = tmp_path_factory.mktemp("landing")
    summary = generate_landing(out, N, seed=7, days=DAYS, start=START)
    with open(summary.truth_file, encoding="utf-8", newline="") as fh:
        truth_rows = list(csv.DictReader(fh))
    truth = {(r["source"], r["source_id"]): r["person_id"] for r in truth_rows}
    with open(out / "_truth" / "people.csv", encoding="utf-8", newline="") as fh:
        people = {r["person_id"]: r for r in csv.DictReader(fh)}
    return Landing(out, summary, _landing_files(out), truth, truth_rows, people)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- determinism & layout
def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = generate_landing(tmp_path / "a", 300, seed=3)
    b = generate_landing(tmp_path / "b", 300, seed=3)
    generate_landing(tmp_path / "c", 300, seed=4)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")
    assert a.records == b.records and a.files == b.files


def test_every_feed_has_a_file_per_batch_matching_its_pattern(landing: Landing) -> None:
    for f in FEEDS:
        names = [lf.path.name for lf in landing.by_feed(f.name)]
        assert names, f"no files for feed {f.name}"
        for name in names:
            assert f.matches(name)
            assert re.search(r"(\d{4}-\d{2}-\d{2}|\d{8}T\d{4}|\d{8})\.(csv|jsonl|parquet)$", name), name
        for d in BATCH_DATES:
            assert any(d in n or d.replace("-", "") in n for n in names), f"{f.name}: no file for {d}"
    orders = [lf.path.name for lf in landing.by_feed("ecommerce_orders")]
    assert any(n.endswith(".parquet") for n in orders) and any(n.endswith(".csv") for n in orders)
    assert (landing.out / "_truth").is_dir() and "_truth" not in source_folders()
    assert landing.summary.files == Counter(lf.feed for lf in landing.files)
    assert landing.summary.records == {f.name: len(landing.rows(f.name)) for f in FEEDS}
    assert landing.summary.people == N


def test_files_carry_exactly_the_contract_columns(landing: Landing) -> None:
    for lf in landing.files:
        f = feed(lf.feed)
        assert lf.rows, f"{lf.path} is empty"
        if lf.path.suffix == ".jsonl":
            for keys in lf.raw_keys:
                assert set(f.required) <= keys <= set(f.columns), (lf.path, keys)
        else:
            assert sorted(lf.columns) == sorted(f.columns), lf.path
        if f.key:
            assert all(r.get(f.key) for r in lf.rows), f"{lf.path}: empty {f.key}"
            assert len({r[f.key] for r in lf.rows}) == len(lf.rows), f"{lf.path}: {f.key} repeats within a file"


def test_crm_encodings_and_shuffled_columns(landing: Landing) -> None:
    encodings = {lf.path.name: lf.encoding for lf in landing.by_feed("crm")}
    assert "gb18030" in encodings.values()
    assert "utf-8-sig" in encodings.values()
    for lf in landing.by_feed("crm"):
        if lf.encoding == "gb18030":
            raw = lf.path.read_bytes()
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            assert any(re.search(ZH, str(r["name"])) for r in lf.rows)
    other = {lf.encoding for lf in landing.files if lf.feed != "crm"}
    assert other <= {"utf-8", "parquet"}
    csv_files = [lf for lf in landing.files if lf.path.suffix == ".csv"]
    shuffled = [lf for lf in csv_files if lf.columns != list(feed(lf.feed).columns)]
    assert shuffled and len(shuffled) < len(csv_files)


# ----------------------------------------------------------------------------- truth
def test_truth_covers_every_person_record_once(landing: Landing) -> None:
    seen: set[tuple[str, str]] = set()
    for source, key in PERSON_SOURCES.items():
        feed_name = "ecommerce_members" if source == "ecommerce" else source
        ids = {str(r[key]) for r in landing.rows(feed_name)}
        seen |= {(source, i) for i in ids}
    assert seen == set(landing.truth), "truth and the person-bearing records differ"
    keys = Counter((r["source"], r["source_id"]) for r in landing.truth_rows)
    assert max(keys.values()) == 1, "a source id appears twice in truth (re-exports must appear once)"
    assert set(landing.truth.values()) <= set(landing.people)
    assert len(landing.people) == N
    assert {s for s, _ in landing.truth} == set(PERSON_SOURCES)
    assert 2.0 * N <= len(landing.truth) <= 2.6 * N, len(landing.truth) / N
    p = next(iter(landing.people.values()))
    assert list(p)[:9] == [
        "person_id",
        "name",
        "gender",
        "birth_date",
        "mobile",
        "email",
        "province",
        "city",
        "district",
    ]
    for p in landing.people.values():
        assert re.fullmatch(r"\+861\d{10}", p["mobile"]), p
        assert p["gender"] in {"M", "F"} and re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["birth_date"])
    assert (landing.out / "_truth" / "README.md").read_text(encoding="utf-8").strip()


def test_intra_source_duplicates_and_cross_source_presence(landing: Landing) -> None:
    for source in PERSON_SOURCES:
        per_person = Counter(p for (s, _), p in landing.truth.items() if s == source)
        dup_share = sum(1 for c in per_person.values() if c > 1) / len(per_person)
        assert 0.03 < dup_share < 0.3, (source, dup_share)
    sources_of = defaultdict(set)
    for (s, _), p in landing.truth.items():
        sources_of[p].add(s)
    assert sum(1 for v in sources_of.values() if len(v) >= 3) > N * 0.1


def test_later_batches_re_export_updated_records(landing: Landing) -> None:
    for feed_name, key, stamp in (("crm", "crm_id", "updated_at"), ("ecommerce_members", "member_id", "last_login_at")):
        versions = defaultdict(list)
        for lf in sorted(landing.by_feed(feed_name), key=lambda lf: lf.path.name):
            for r in lf.rows:
                versions[r[key]].append(r)
        again = {k: v for k, v in versions.items() if len(v) > 1}
        assert again, f"no re-exports in {feed_name}"
        assert all(str(v[-1][stamp]) > str(v[0][stamp]) for v in again.values())
        phone = "mobile" if feed_name == "crm" else "phone"
        place = "address" if feed_name == "crm" else "shipping_address"
        assert any(_digits(v[0][phone]) != _digits(v[-1][phone]) for v in again.values()), feed_name
        assert any(v[0][place] != v[-1][place] for v in again.values()), feed_name
    new_in_later = {r["crm_id"] for lf in landing.by_feed("crm") if "2026-11-20" in lf.path.name for r in lf.rows}
    first = {r["crm_id"] for lf in landing.by_feed("crm") if re.search(r"2026-11-1[78]", lf.path.name) for r in lf.rows}
    assert new_in_later - first


# ----------------------------------------------------------------------------- names
def test_common_names_recur_in_the_same_city(landing: Landing) -> None:
    names = Counter(p["name"] for p in landing.people.values())
    assert max(names[n] for n in ("王伟", "张伟", "李娜", "刘洋")) >= 3
    same_city = Counter((p["name"], p["city"]) for p in landing.people.values())
    assert sum(1 for (name, _), c in same_city.items() if c >= 2 and names[name] >= 3) >= 3
    surnames = Counter(p["name"][0] for p in landing.people.values() if re.match(ZH, p["name"]))
    top = [s for s, _ in surnames.most_common(5)]
    assert {"王", "李", "张"} <= set(top)
    assert any(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", p["name"]) for p in landing.people.values())


def test_name_dirt_is_present(landing: Landing) -> None:
    names = (
        landing.values("crm", "name")
        + landing.values("store_pos", "name")
        + landing.values("callcenter", "caller_name")
    )
    checks = {
        "inserted space": rf"{ZH} {ZH}",
        "full-width space or letters": r"[\u3000\uff21-\uff5a]",
        "traditional": r"[陳張劉黃趙吳楊偉麗靜]",
        "latin": r"^[A-Za-z]+ [A-Za-z]+$",
        "stray outer space": r"^\s|\s$",
        "honorific": rf"^{ZH}(先生|女士)$",
    }
    for label, pattern in checks.items():
        assert any(re.search(pattern, n) for n in names), label


def test_callcenter_homophone_typos(landing: Landing) -> None:
    typos = 0
    for r in landing.rows("callcenter"):
        typed = str(r["caller_name"])
        canon = landing.people[landing.person("callcenter", r["ticket_id"])]["name"]
        if len(typed) == len(canon) and re.fullmatch(rf"{ZH}+", typed):
            diff = [(a, b) for a, b in zip(canon, typed, strict=True) if a != b]
            if len(diff) == 1 and diff[0][1] not in "陳張劉黃趙吳楊偉麗靜":
                typos += 1
    assert typos > len(landing.rows("callcenter")) * 0.05


def test_ecommerce_nicknames_and_missing_real_names(landing: Landing) -> None:
    rows = landing.rows("ecommerce_members")
    nicks = [str(r["nickname"]) for r in rows]
    assert sum(bool(re.fullmatch(r"[a-z]+\d*", n)) for n in nicks) > len(rows) * 0.2  # wangwei88
    assert any(re.fullmatch(r"[a-z]+\.[a-z]+", n) for n in nicks)  # zhang.wei
    assert sum("real_name" not in r for r in rows) > len(rows) * 0.15
    assert any(r.get("real_name") for r in rows)


# ----------------------------------------------------------------------------- attributes
def test_gender_and_birth_date_variants(landing: Landing) -> None:
    assert set(landing.values("crm", "gender")) == {"男", "女", "M", "F", "male", "female", ""}
    births = landing.values("crm", "birth_date")
    for pattern in (r"\d{4}-\d{2}-\d{2}", r"\d{4}/\d{1,2}/\d{1,2}", r"\d{8}", r"\d{4}年\d{1,2}月\d{1,2}日", r""):
        assert any(re.fullmatch(pattern, b) for b in births), pattern
    birthdays = landing.values("store_pos", "birthday")
    assert sum(bool(re.fullmatch(r"\d{2}-\d{2}", b)) for b in birthdays) > len(birthdays) * 0.3
    swapped = 0
    for r in landing.rows("crm"):
        m = re.fullmatch(r"(\d{4})\D?(\d{1,2})\D?(\d{1,2})\D?", str(r["birth_date"]))
        if m:
            y, mo, d = m.group(1), int(m.group(2)), int(m.group(3))
            canon = landing.people[landing.person("crm", r["crm_id"])]["birth_date"]
            if canon == f"{y}-{d:02d}-{mo:02d}" and mo != d:
                swapped += 1
    assert swapped > 0


def test_phone_variants(landing: Landing) -> None:
    phones = (
        landing.values("crm", "mobile")
        + landing.values("ecommerce_members", "phone")
        + landing.values("callcenter", "caller_phone")
        + landing.values("store_pos", "phone")
    )
    patterns = {
        "plain": r"1\d{10}",
        "dashed": r"1\d{2}-\d{4}-\d{4}",
        "+86 spaced": r"\+86 1\d{2} \d{4} \d{4}",
        "86-": r"86-1\d{10}",
        "(+86)": r"\(\+86\)1\d{10}",
        "full-width": r"[\uff10-\uff19]{11}",
        "landline": r"0\d{2,3}-\d{7,8}",
    }
    for label, pattern in patterns.items():
        assert any(re.fullmatch(pattern, p) for p in phones), label
    invalid = [p for p in phones if p and not re.fullmatch(r"1[3-9]\d{9}|0\d{9,11}", _digits(p))]
    assert 0 < len(invalid) < len(phones) * 0.05


def test_people_change_numbers_and_share_phones(landing: Landing) -> None:
    numbers_of = defaultdict(set)
    persons_of = defaultdict(set)
    for feed_name, source, key, col in (
        ("crm", "crm", "crm_id", "mobile"),
        ("ecommerce_members", "ecommerce", "member_id", "phone"),
        ("callcenter", "callcenter", "ticket_id", "caller_phone"),
        ("store_pos", "store_pos", "card_no", "phone"),
    ):
        for r in landing.rows(feed_name):
            d = _digits(r[col])
            if re.fullmatch(r"1[3-9]\d{9}|0\d{9,11}", d):
                p = landing.person(source, r[key])
                persons_of[d].add(p)
                if d.startswith("1"):
                    numbers_of[p].add(d)
    changed = [p for p, nums in numbers_of.items() if f"{landing.people[p]['mobile'][3:]}" in nums and len(nums) > 1]
    assert changed, "nobody changed their mobile"
    shared = {d: ps for d, ps in persons_of.items() if len(ps) > 1}
    assert any(d.startswith("0") for d in shared), "no shared landline"
    assert any(d.startswith("1") for d in shared), "no mobile shared by a parent and a child"


def test_email_dirt_and_family_mailboxes(landing: Landing) -> None:
    emails = [e for e in landing.values("crm", "email") + landing.values("ecommerce_members", "email") if e]
    assert any(e != e.lower() for e in emails)
    assert any(e != e.strip() or " " in e for e in emails)
    assert any(
        re.search(r"@(qq\.con|163\.cm|gmial\.com|126\.con|hotmial\.com|sina\.con|outlok\.com)$", e) for e in emails
    )
    persons_of = defaultdict(set)
    for r in landing.rows("crm"):
        if r["email"]:
            persons_of[_email(r["email"])].add(landing.person("crm", r["crm_id"]))
    for r in landing.rows("ecommerce_members"):
        if r["email"]:
            persons_of[_email(r["email"])].add(landing.person("ecommerce", r["member_id"]))
    assert any(len(p) > 1 for p in persons_of.values()), "no shared family mailbox"


def test_geography_aliases_and_moves(landing: Landing) -> None:
    provinces = set(landing.values("crm", "province"))
    assert {"上海市", "上海"} <= provinces or {"广东省", "广东"} <= provinces
    assert provinces & {"沪", "粤", "京", "浙", "苏"}
    assert provinces & {"Shanghai", "Guangdong", "Beijing", "Zhejiang", "Jiangsu"}
    assert len({p["province"] for p in landing.people.values()}) >= 12
    cities = set(landing.values("crm", "city")) | set(landing.values("callcenter", "city"))
    assert cities & {"深圳", "杭州", "广州", "南京"} and cities & {"深圳市", "杭州市", "广州市", "南京市"}
    ship = landing.values("ecommerce_members", "shipping_address")
    assert any(re.match(r"沪|粤|京|浙|苏", s) for s in ship)
    assert any(re.match(r"(广东|浙江|江苏)(省)?\s?\S{2,3}(市)?", s) for s in ship)
    # people move: older records keep an address that is not the person's current one
    old_address = 0
    for r in landing.rows("crm"):
        shown = unicodedata.normalize("NFKC", str(r["address"])).replace(" ", "")
        current = landing.people[landing.person("crm", r["crm_id"])]["address"]
        old_address += bool(shown) and current not in shown
    assert 0 < old_address < len(landing.rows("crm")) * 0.2, "nobody moved"


def test_company_type_tier_consent_variants(landing: Landing) -> None:
    companies = landing.values("crm", "company")
    assert any(c.endswith("有限责任公司") for c in companies)
    assert any(re.search(r"[(（]\S+[)）]有限公司$", c) for c in companies)
    assert any(c.endswith("有限公司") and not c.endswith("有限责任公司") for c in companies)
    assert set(landing.values("crm", "customer_type")) == {"个人", "企业"}
    assert set(landing.values("crm", "tier")) == {"潜在", "普通", "VIP"}
    assert set(landing.values("crm", "consent_marketing")) == {"是", "否", "Y", "N", "1", "0", "true", "false", ""}


def test_timestamp_formats(landing: Landing) -> None:
    local = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    for feed_name, cols in (
        ("crm", ("created_at", "updated_at")),
        ("callcenter", ("created_at",)),
        ("store_pos", ("enrolled_at",)),
        ("contact_events", ("occurred_at",)),
        ("erasure", ("requested_at",)),
    ):
        for col in cols:
            assert all(re.fullmatch(local, v) for v in landing.values(feed_name, col)), (feed_name, col)
    iso = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00"
    rows = landing.rows("ecommerce_members")
    assert all(re.fullmatch(iso, str(r["registered_at"])) for r in rows)
    assert all(isinstance(r["last_login_at"], int) and 1.4e12 < r["last_login_at"] < 1.9e12 for r in rows)
    assert all(re.fullmatch(iso, v) for v in landing.values("ecommerce_orders", "order_ts"))
    assert all(re.fullmatch(iso, v) for v in landing.values("self_service", "submitted_at"))
    for r in landing.rows("crm"):
        assert r["updated_at"] >= r["created_at"]


# ----------------------------------------------------------------------------- orders & events
def test_orders_reference_existing_members(landing: Landing) -> None:
    seen: set[str] = set()
    for d in BATCH_DATES:
        for lf in landing.by_feed("ecommerce_members"):
            if d.replace("-", "") in lf.path.name:
                seen |= {str(r["member_id"]) for r in lf.rows}
        for lf in landing.by_feed("ecommerce_orders"):
            if d in lf.path.name:
                missing = {str(r["member_id"]) for r in lf.rows} - seen
                assert not missing, f"{lf.path.name}: unknown members {sorted(missing)[:5]}"
    rows = landing.rows("ecommerce_orders")
    assert all(re.fullmatch(r"-?\d+\.\d{2}", str(r["amount_cny"])) for r in rows)
    assert {r["status"] for r in rows} == {"paid", "refunded", "cancelled"}
    assert any(str(r["amount_cny"]).startswith("-") and r["status"] == "refunded" for r in rows)
    assert len({r["order_id"] for r in rows}) == len(rows)


def test_self_service_events_reference_existing_records(landing: Landing) -> None:
    rows = landing.rows("self_service")
    assert rows
    ids = {("crm", k) for (s, k) in landing.truth if s == "crm"}
    ids |= {("ecommerce", k) for (s, k) in landing.truth if s == "ecommerce"}
    ids |= {("store_pos", k) for (s, k) in landing.truth if s == "store_pos"}
    assert all((r["source_system"], r["source_id"]) in ids for r in rows)
    fields = Counter(r["field"] for r in rows)
    assert set(fields) <= {"mobile", "email", "address", "province", "city", "district", "consent_marketing"}
    assert {"mobile", "address", "district", "email", "consent_marketing"} <= set(fields)
    for r in rows:
        person = landing.people[landing.person(str(r["source_system"]), r["source_id"])]
        if r["field"] == "mobile":
            assert _digits(r["new_value"]) == person["mobile"][3:]
        if r["field"] == "address":
            assert r["new_value"] == person["address"]


def test_contact_events_reference_known_values(landing: Landing) -> None:
    rows = landing.rows("contact_events")
    assert {r["event"] for r in rows} == {"bounced", "unreachable", "verified", "opted_out"}
    assert {r["channel"] for r in rows} == {"email", "phone"}
    phones = {
        _digits(v)
        for f, c in (
            ("crm", "mobile"),
            ("ecommerce_members", "phone"),
            ("callcenter", "caller_phone"),
            ("store_pos", "phone"),
        )
        for v in landing.values(f, c)
    }
    emails = {
        _email(v)
        for f, c in (("crm", "email"), ("ecommerce_members", "email"), ("callcenter", "callback_email"))
        for v in landing.values(f, c)
    }
    for r in rows:
        if r["channel"] == "phone":
            assert _digits(r["value"]) in phones, r
        else:
            assert _email(r["value"]) in emails, r
    assert any(
        r["event"] == "bounced" and re.search(r"\.(con|cm)$|gmial|hotmial|outlok", str(r["value"])) for r in rows
    )
    old_numbers = [
        r for r in rows if r["event"] == "unreachable" and re.fullmatch(r"(\+86)?1[3-9]\d{9}", str(r["value"]))
    ]
    assert old_numbers, "no unreachable old number"


def test_erasure_requests_reference_existing_identifiers(landing: Landing) -> None:
    rows = landing.rows("erasure")
    assert rows
    id_sources = {"crm_id": "crm", "member_id": "ecommerce", "card_no": "store_pos"}
    mobiles = {p["mobile"][3:] for p in landing.people.values()}
    emails = {p["email"] for p in landing.people.values()}
    for r in rows:
        kind, value = r["identifier_type"], str(r["identifier_value"])
        assert kind in {"mobile", "email", "crm_id", "member_id", "card_no"}
        if kind in id_sources:
            assert (id_sources[kind], value) in landing.truth
        elif kind == "mobile":
            assert _digits(value) in mobiles
        else:
            assert value in emails


# ----------------------------------------------------------------------------- options
def test_dirty_files_are_listed_and_sort_after_good_files(tmp_path: Path) -> None:
    out = tmp_path / "dirty"
    summary = generate_landing(out, 300, days=2, dirty_files=True)
    with open(out / "_truth" / "bad_files.csv", encoding="utf-8", newline="") as fh:
        bad = list(csv.DictReader(fh))
    assert len(bad) == 4 and all(r["reason"] for r in bad)
    for r in bad:
        path = out / r["file"]
        assert path.exists()
        siblings = sorted(
            p.name
            for p in path.parent.iterdir()
            if feed_for_file(path.parent.name, p.name)
            and feed_for_file(path.parent.name, p.name) == feed_for_file(path.parent.name, path.name)
        )
        assert siblings[-1] == path.name
    reasons = " ".join(r["reason"] for r in bad)
    assert "empty" in reasons and "truncated" in reasons and "missing required column" in reasons and "JSON" in reasons
    assert any((out / r["file"]).stat().st_size == 0 for r in bad)
    assert summary.files["crm"] == 3  # bad files are not counted


def test_single_day_still_has_every_encoding(tmp_path: Path) -> None:
    generate_landing(tmp_path, 300, days=1)
    files = _landing_files(tmp_path)
    assert {lf.encoding for lf in files if lf.feed == "crm"} == {"gb18030", "utf-8-sig"}
    assert any(lf.path.suffix == ".parquet" for lf in files)
    assert all(lf.rows for lf in files)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_landing(tmp_path, 0)
    with pytest.raises(ValueError):
        generate_landing(tmp_path, 10, days=0)


# ----------------------------------------------------------------------------- the linkage traps (issue 17)
def test_people_of_one_name_share_bare_pinyin_mailboxes(landing: Landing) -> None:
    holders: dict[str, set[str]] = defaultdict(set)
    for p in landing.people.values():
        if p["email"]:
            holders[p["email"]].add(p["person_id"])
    shared = [e for e, who in holders.items() if len(who) > 1]
    assert shared, "no mailbox shared by two people"
    for e in shared:  # only bare pinyin, and only between people of one name
        assert re.fullmatch(r"[a-z]+@(qq|163)\.com", e)
        assert len({landing.people[p]["name"] for p in holders[e]}) == 1


def test_name_twins_live_in_one_city_with_their_own_mobiles(landing: Landing) -> None:
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for p in landing.people.values():
        groups[(p["name"], p["city"])].append(p)
    # rare names (not the boosted common ones) held by two people of one city: the twins
    twins = [g for (name, _), g in groups.items() if len(g) == 2 and name not in ("王伟", "张伟", "李娜", "刘洋")]
    assert len(twins) >= 3
    assert all(len({p["mobile"] for p in g}) == 2 and len({p["birth_date"] for p in g}) == 2 for g in twins)


def test_households_have_nameless_shop_accounts(landing: Landing) -> None:
    shops = [r for r in landing.rows("ecommerce_members") if str(r["member_id"]).startswith("M9")]
    assert shops
    for r in shops:
        # no real name, and a handle that is no name: tb12345678, jd_12345678, 快乐的小鱼
        assert not r.get("real_name") and re.fullmatch(r"(tb|jd_)\d{8}|[\u4e00-\u9fff]+", str(r["nickname"]))
        assert r["member_id"] and landing.person("ecommerce", r["member_id"])  # truth: one member
    # the account shows a mobile that some other person of the landing (the head) uses
    owner_mobiles = {_digits(landing.people[landing.person("ecommerce", r["member_id"])]["mobile"]) for r in shops}
    shown = {_digits(r["phone"]) for r in shops}
    assert shown - owner_mobiles  # not always the owner's own number


def test_callcenter_tickets_after_a_change_show_the_old_number(landing: Landing) -> None:
    old_numbers = 0
    for r in landing.rows("callcenter"):
        current = _digits(landing.people[landing.person("callcenter", r["ticket_id"])]["mobile"])
        typed = _digits(r["caller_phone"])
        if str(r["created_at"]) >= "2026-11-01" and len(typed) == 11 and typed != current:
            old_numbers += 1
    assert old_numbers >= 1


def test_shipping_addresses_in_english_with_zones_or_without_city(landing: Landing) -> None:
    addresses = landing.values("ecommerce_members", "shipping_address")
    assert any(re.match(r"[A-Z][a-z]+ ", a) for a in addresses)  # Guangdong Shenzhen …
    assert any(re.search("高新区|工业园区|开发区", a) for a in addresses)
    assert any(re.match(r"(广东|江苏|浙江|四川|湖北)(省)?[\u4e00-\u9fff]{1,3}区", a) for a in addresses)  # no city
