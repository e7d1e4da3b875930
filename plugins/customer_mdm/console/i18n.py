"""The console's two languages (English, Simplified Chinese), chosen per user."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"en": "MDM console", "zh": "主数据控制台"},
    "sign_in": {"en": "Sign in", "zh": "登录"},
    "sign_out": {"en": "Sign out", "zh": "退出"},
    "user": {"en": "User", "zh": "用户"},
    "password": {"en": "Password", "zh": "密码"},
    "bad_login": {"en": "Wrong user name or password.", "zh": "用户名或密码错误。"},
    "locked": {
        "en": "Too many failed sign-ins: the account is locked for a while.",
        "zh": "登录失败次数过多：账户已暂时锁定。",
    },
    "review": {"en": "Review queue", "zh": "待审核配对"},
    "customers": {"en": "Customers", "zh": "客户"},
    "worklist": {"en": "Worklist", "zh": "工作清单"},
    "governance": {"en": "Governance", "zh": "数据治理"},
    "actions": {"en": "My actions", "zh": "操作记录"},
    "search": {"en": "Search", "zh": "搜索"},
    "search_hint": {
        "en": "name, phone, e-mail, golden id or source record",
        "zh": "姓名、手机、邮箱、黄金ID或源记录",
    },
    "match": {"en": "Match", "zh": "同一人"},
    "no_match": {"en": "No match", "zh": "不同人"},
    "skip": {"en": "Skip", "zh": "跳过"},
    "note": {"en": "Note", "zh": "备注"},
    "keys": {
        "en": "Keys: m match, n no match, s skip, j/k next/previous",
        "zh": "快捷键：m 同一人，n 不同人，s 跳过，j/k 下一个/上一个",
    },
    "pairs_waiting": {"en": "pairs awaiting review", "zh": "对待审核"},
    "probability": {"en": "Match probability", "zh": "匹配概率"},
    "weight": {"en": "Weight", "zh": "权重"},
    "waterfall": {"en": "Match-weight waterfall", "zh": "匹配权重瀑布图"},
    "field": {"en": "Field", "zh": "字段"},
    "left": {"en": "Left", "zh": "左"},
    "right": {"en": "Right", "zh": "右"},
    "pending": {"en": "pending until the next run", "zh": "待下次运行生效"},
    "applied": {"en": "applied", "zh": "已生效"},
    "rejected": {"en": "rejected", "zh": "已拒绝"},
    "golden": {"en": "Golden record", "zh": "黄金记录"},
    "attribute": {"en": "Attribute", "zh": "属性"},
    "value": {"en": "Value", "zh": "值"},
    "source_record": {"en": "Source record", "zh": "源记录"},
    "rule": {"en": "Rule", "zh": "规则"},
    "records": {"en": "Source records", "zh": "源记录"},
    "consent": {"en": "Consent statements", "zh": "同意声明"},
    "contact_status": {"en": "Contact status", "zh": "联系状态"},
    "orders": {"en": "Orders", "zh": "订单"},
    "segment": {"en": "Segment", "zh": "客户分群"},
    "history": {"en": "Golden-id history", "zh": "黄金ID历史"},
    "audit": {"en": "Audit trail", "zh": "审计记录"},
    "correct": {"en": "Correct an attribute", "zh": "更正属性"},
    "split": {"en": "Split this record out", "zh": "拆分此记录"},
    "merge": {"en": "Merge with customer", "zh": "与客户合并"},
    "submit": {"en": "Submit", "zh": "提交"},
    "corrections": {"en": "Steward corrections", "zh": "数据管理员更正"},
    "no_results": {"en": "Nothing found.", "zh": "未找到。"},
    "masked": {"en": "Personal data is masked for your role.", "zh": "您的角色只能看到脱敏数据。"},
    "forbidden": {"en": "Your role may not do this.", "zh": "您的角色无权执行此操作。"},
    "csrf": {"en": "The form expired: reload the page and try again.", "zh": "表单已过期：请刷新页面后重试。"},
    "language": {"en": "中文", "zh": "English"},
    "priority": {"en": "Priority", "zh": "优先级"},
    "reason": {"en": "Reason", "zh": "原因"},
    "tier": {"en": "Tier", "zh": "等级"},
    "source": {"en": "Source", "zh": "来源"},
    "assignee": {"en": "Assignee", "zh": "负责人"},
    "status": {"en": "Status", "zh": "状态"},
    "overdue": {"en": "Days overdue", "zh": "逾期天数"},
    "export_csv": {"en": "Export CSV", "zh": "导出CSV"},
    "this_week": {"en": "This week's work", "zh": "本周工作"},
    "all_items": {"en": "All items", "zh": "全部"},
    "filter": {"en": "Filter", "zh": "筛选"},
    "scorecard": {"en": "Scorecard", "zh": "质量评分卡"},
    "runs": {"en": "Run history", "zh": "运行历史"},
    "quarantine": {"en": "Quarantine", "zh": "隔离区"},
    "reports": {"en": "Reports", "zh": "报告"},
    "no_data": {"en": "No published data yet: run the pipeline first.", "zh": "尚无发布数据：请先运行数据管道。"},
    "decided": {"en": "Decision recorded; it takes effect on the next run.", "zh": "已记录决定，下次运行时生效。"},
    "saved": {"en": "Saved; it takes effect on the next run.", "zh": "已保存，下次运行时生效。"},
    "open": {"en": "open", "zh": "待处理"},
    "in_progress": {"en": "in progress", "zh": "处理中"},
    "done": {"en": "done", "zh": "已完成"},
    "wont_fix": {"en": "won't fix", "zh": "不处理"},
    "closed": {"en": "closed (cause gone)", "zh": "已关闭（原因已消除）"},
}


def translator(language: str):  # type: ignore[no-untyped-def]
    lang = language if language in ("en", "zh") else "en"

    def t(key: str) -> str:
        entry = MESSAGES.get(key)
        return entry.get(lang, entry["en"]) if entry else key

    return t
