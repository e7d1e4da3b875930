"""Deterministic, seeded generator of demo landing-zone data.

``generate_landing(out, entities)`` writes a landing zone that follows the reference-source
contract (``/work/shared/contracts/reference-sources.md``, mirrored by
:mod:`customer_mdm.sources`) for ``entities`` real people, plus the ground truth under
``<out>/_truth/``. The same ``(entities, seed, days, start)`` always gives byte-identical
files: every random draw comes from one ``numpy.random.Generator(PCG64(seed))`` in a fixed
order, and nothing depends on the clock or on set ordering.

How the world is built
----------------------
*People* get a Chinese name (surnames drawn with their real frequency, common given names
over-represented, about 0.8 % forced onto the very common full names 王伟/张伟/李娜/刘洋/...,
so these recur ~10x more often than in the real population: 王伟 is ~0.3 % of people),
about 1 % a Latin name ("Emily Chen"); gender, birth date, a home district in one of 16
provinces, a street address, a unique mobile, usually an email, sometimes an employer.
About 18 % live in 2-4 person households that share the address, often a landline
(``021-61234567``) and sometimes a family mailbox; a parent's mobile shows up on a child's
records. 12 % change mobile, 8 % move, 5 % change employer -- most in the past, a quarter
during the export window -- and every record shows the values valid at its own time, so
older records keep the old values.

*Source records*, per person (the share of people present / extra records of a person
already present in the same source):

=============  ==========  =============================================================
source         people      intra-source duplicates
=============  ==========  =============================================================
crm            60 %        7 % (second contact)
ecommerce      70 %        8 % (second account); ~1.5 orders per account
callcenter     30 %        15 % (called again: another ticket)
store_pos      40 %        7 % (card re-registered after a loss)
=============  ==========  =============================================================

That is about 2.2 person records per person. Records are split into ``days`` export
batches (the first batch is the full historical export, each later batch holds ~10 % new
records created that day) and later batches re-export earlier CRM, ecommerce and store
records: all those whose person moved or changed number in between (85 %) and a random
5-6 % (later ``updated_at``, tier/consent changes).

*Dirt* (per record, rates approximate): names 15-40 % dirty (spaces, full-width spaces or
letters, traditional characters, pinyin, call-centre homophones, "王先生"), gender in six
spellings, birth dates in five formats plus 3 % day/month swaps, phones in eight formats
plus landlines, a parent's phone and ~1.5 % invalid numbers, emails with case, spaces and
domain typos (``qq.con``), province/city/district standard or alias (``沪``, ``Shanghai``),
company-name variants, seven consent spellings. The CRM's first batch is split: records
untouched since before the cut-off (5 years) come from the old system's export of the
previous day (``crm_<start - 1 day>.csv``, GB18030, CRLF line ends), the rest is UTF-8 with
a BOM; later CRM files are plain UTF-8. Column order is shuffled in about half of the CSV
files. The last batch's orders are Parquet (``amount_cny`` as decimal), the others CSV.

Event feeds: ``self_service`` (new mobile/address/email/consent for existing records, the
values match the truth), ``contact_events`` (bounced typo emails, unreachable old or
invalid numbers, verified and opted-out contacts) and ``erasure`` (a few people, by
mobile, email or record id).

Truth: ``_truth/truth.csv`` (``source,source_id,person_id`` for every person-bearing
record, once per id), ``_truth/people.csv`` (canonical attributes) and ``_truth/README.md``.
With ``dirty_files=True`` four broken files are added (listed in ``_truth/bad_files.csv``).

Files are written per batch: ``crm/crm_2026-11-18.csv``, ``ecommerce/members_20261118T0300.jsonl``,
``ecommerce/orders_2026-11-18.csv``, ``callcenter/tickets_…``, ``store_pos/cards_…``,
``self_service/changes_20261118.jsonl``, ``contact_events/events_…``, ``erasure/erasure_…``. A
CSV batch without rows is a header-only file; a JSON Lines batch without rows is not written
(only happens for tiny ``entities``). Speed: ~40 s and ~1.5 GB for 500 000 people on 2 cores.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pac
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from customer_mdm.sources import FEEDS, PERSON_SOURCES, feed

log = logging.getLogger(__name__)

__all__ = ["GENERATOR_VERSION", "GenerateSummary", "generate_landing"]

#: numpy's variable-width UTF-8 string dtype; every text column is built as one of these.
#: bumped whenever the same arguments give other data (benchmarks cache landing zones by it)
GENERATOR_VERSION = 3
_S = np.dtypes.StringDType()
_INF = np.int64(2**62)  # "never" for change timestamps
_DAY = 86_400
_TRUTH_DIR = "_truth"


# ============================================================================ reference data
def _parse_weighted(spec: str) -> tuple[list[str], list[str], np.ndarray]:
    items = re.findall(r"([\u4e00-\u9fff]+)([a-z]+)([\d.]+)", spec)
    weights = np.array([float(w) for _, _, w in items])
    return [c for c, _, _ in items], [p for _, p, _ in items], weights / weights.sum()


_SURNAME_SPEC = """
王wang7.25 李li7.19 张zhang6.83 刘liu5.38 陈chen4.53 杨yang3.08 黄huang2.23 赵zhao2.29 吴wu2.05
周zhou1.9 徐xu1.45 孙sun1.38 马ma1.29 朱zhu1.26 胡hu1.16 郭guo1.15 何he1.05 林lin1.0 高gao1.0
罗luo.87 郑zheng.78 梁liang.75 谢xie.68 宋song.63 唐tang.62 许xu.6 韩han.59 冯feng.58 邓deng.57
曹cao.55 彭peng.54 曾zeng.53 肖xiao.52 田tian.51 董dong.5 袁yuan.49 潘pan.48 于yu.47 蒋jiang.46
蔡cai.45 余yu.44 杜du.43 叶ye.42 程cheng.41 苏su.4 魏wei.39 吕lv.38 丁ding.37 任ren.36 沈shen.35
姚yao.34 卢lu.33 姜jiang.32 崔cui.31 钟zhong.3 谭tan.29 陆lu.28 汪wang.27 范fan.26 金jin.25
石shi.24 廖liao.23 贾jia.22 夏xia.21 韦wei.2 付fu.2 方fang.2 白bai.19 邹zou.19 孟meng.18
熊xiong.18 秦qin.17 邱qiu.17 江jiang.17 尹yin.16 薛xue.16 闫yan.15 段duan.15 雷lei.15 侯hou.14
龙long.14 史shi.13 陶tao.13 黎li.13 贺he.13 顾gu.12 毛mao.12 郝hao.12 龚gong.11 邵shao.11
万wan.11 钱qian.11 严yan.1 武wu.1 戴dai.1 莫mo.1 孔kong.1 向xiang.1 汤tang.1 欧阳ouyang.03
司马sima.01 诸葛zhuge.01 上官shangguan.01
"""
_SURNAMES, _SURNAME_PY, _SURNAME_P = _parse_weighted(_SURNAME_SPEC)

_CHAR_PY_SPEC = """
伟wei 强qiang 磊lei 军jun 勇yong 杰jie 涛tao 斌bin 超chao 明ming 刚gang 平ping 辉hui 鹏peng
华hua 飞fei 鑫xin 波bo 宇yu 浩hao 建jian 国guo 志zhi 海hai 东dong 俊jun 文wen 龙long 林lin
峰feng 亮liang 成cheng 晨chen 博bo 轩xuan 然ran 子zi 天tian 振zhen 嘉jia 泽ze 宏hong 家jia 德de
永yong 健jian 凯kai 毅yi 铭ming 睿rui 昊hao 洋yang 帅shuai 阳yang 春chun 光guang 庆qing 新xin
良liang 兵bing 芳fang 娜na 敏min 静jing 丽li 艳yan 娟juan 霞xia 秀xiu 英ying 兰lan 桂gui 玉yu
婷ting 雪xue 慧hui 颖ying 琳lin 晶jing 倩qian 洁jie 佳jia 欣xin 怡yi 梓zi 涵han 雨yu 晓xiao
燕yan 丹dan 萍ping 玲ling 红hong 梅mei 莉li 云yun 琴qin 凤feng 月yue 爱ai 淑shu 美mei 露lu
薇wei 璐lu 思si 诗shi 悦yue 蕾lei 珍zhen 一yi 宁ning 安an 乐le 心xin
"""
_CHAR_ITEMS = re.findall(r"([\u4e00-\u9fff])([a-z]+)", _CHAR_PY_SPEC)
_CHARS = [c for c, _ in _CHAR_ITEMS]
_CHAR_PY = [p for _, p in _CHAR_ITEMS]
_CHAR_INDEX = {c: i for i, c in enumerate(_CHARS)}
_MALE_CHARS = (
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩建国志海东俊文龙林峰亮成晨博轩然"
    + "子天振嘉泽宏家德永健凯毅铭睿昊洋帅阳春光庆新良兵"
)
_FEMALE_CHARS = "芳娜敏静丽艳娟霞秀英兰桂玉婷雪慧颖琳晶倩洁佳欣怡梓涵雨晓燕丹萍玲红梅莉云琴凤月爱淑美露薇璐思诗悦蕾珍"
_NEUTRAL_CHARS = "文明晓子雨佳嘉思一宁安乐心春华"

# The most frequent given names, with rough relative weights.
_MALE_TOP = (
    "伟10 强4 磊4 军4 勇3.5 杰3.5 涛3 斌2.5 超2.5 明2.5 刚2.5 平2 辉2 鹏2 华2 飞2 鑫2 波2 洋3 宇2 "
    "浩2 建华2 建国2 志强2 海涛1.5 晓东1.5 俊杰1.5 子轩1.5 浩然1.5 宇轩1.2 文博1 志明1 国强1 建军1.5 永强1"
)
_FEMALE_TOP = (
    "芳8 娜7 敏6 静6 丽5 秀英5 艳4.5 娟4 霞3.5 秀兰3 桂英3 玉兰2.5 婷3 雪2.5 慧2.5 颖2 琳2 晶2 倩2 "
    "洁2 佳1.5 欣怡2 梓涵2 雨涵1.5 子涵1.5 晓燕1.5 丹2 萍2 玲2 红2 洋2 丽娟1.5 秀珍1.5 淑珍1"
)
# Very common full names (surname, given, gender 0=male 1=female, weight).
_COMMON_FULL = [
    ("王", "伟", 0, 6),
    ("张", "伟", 0, 6),
    ("李", "娜", 1, 5),
    ("刘", "洋", 0, 4),
    ("王", "芳", 1, 5),
    ("李", "伟", 0, 4),
    ("张", "敏", 1, 3),
    ("李", "静", 1, 3),
    ("王", "静", 1, 3),
    ("刘", "伟", 0, 3),
    ("王", "秀英", 1, 3),
    ("张", "丽", 1, 2),
    ("李", "强", 0, 2),
    ("王", "磊", 0, 2),
    ("陈", "静", 1, 2),
    ("刘", "芳", 1, 2),
    ("陈", "伟", 0, 2),
    ("杨", "洋", 1, 2),
    ("张", "静", 1, 2),
    ("王", "敏", 1, 2),
]

_EN_MALE = "David Kevin Jason Michael Tony Eric Jack Peter William Frank Leo Steven Bruce Andy".split()
_EN_FEMALE = "Emily Grace Lily Amy Vivian Cindy Linda Sophia Helen Alice Coco Iris Jenny Sarah".split()

# Traditional characters for simplified ones (陳 for 陈 ...).
_TRAD_PAIRS = (
    "陈陳张張刘劉黄黃赵趙吴吳杨楊伟偉丽麗静靜郑鄭孙孫马馬罗羅许許邓鄧冯馮叶葉苏蘇卢盧蒋蔣韩韓杰傑华華"
    "军軍兰蘭红紅凤鳳龙龍刚剛宁寧鹏鵬辉輝涛濤艳艷东東国國云雲晓曉庆慶凯凱铭銘谢謝钟鍾陆陸汤湯贺賀"
    "龚龔万萬钱錢严嚴邹鄒闫閆顾顧飞飛颖穎乐樂爱愛强強阳陽宝寶"
)
_TRAD = {ord(_TRAD_PAIRS[i]): _TRAD_PAIRS[i + 1] for i in range(0, len(_TRAD_PAIRS), 2)}

# Characters a call-centre agent types for what they hear (homophones / near-homophones).
_HOMOPHONES = {
    "伟": "玮炜威",
    "陈": "程成",
    "静": "晶敬",
    "娜": "那纳",
    "张": "章",
    "李": "黎理",
    "刘": "柳",
    "杨": "阳",
    "王": "汪",
    "芳": "方",
    "丽": "莉俐",
    "敏": "民",
    "军": "君均",
    "涛": "韬",
    "明": "铭鸣",
    "洋": "阳扬",
    "磊": "雷",
    "婷": "亭",
    "华": "桦",
    "强": "墙",
    "勇": "永",
    "杰": "洁捷",
    "斌": "彬",
    "超": "潮",
    "鹏": "朋",
    "辉": "晖",
    "红": "宏虹",
    "霞": "侠",
    "燕": "艳雁",
    "玲": "铃",
    "丹": "单",
    "萍": "平",
    "梅": "玫",
    "晶": "静",
    "颖": "莹",
    "慧": "惠",
    "倩": "茜",
    "欣": "鑫",
    "峰": "锋",
    "宇": "雨",
    "浩": "昊",
    "东": "冬",
    "黄": "王",
    "周": "邹",
    "徐": "许",
    "郑": "正",
    "吴": "伍",
    "林": "琳",
    "秀": "绣",
    "英": "莹",
    "兰": "岚",
}

_FULLWIDTH = {i: i + 0xFEE0 for i in range(0x21, 0x7F)} | {0x20: 0x3000}

# Geography: province (standard, short, abbreviation, English, weight) and its cities
# (standard, English, area code, weight, districts).
_GEO_SPEC: list[tuple[str, str, str, str, float, list[tuple[str, str, str, float, str]]]] = [
    (
        "北京市",
        "北京",
        "京",
        "Beijing",
        9,
        [("北京市", "Beijing", "010", 1, "朝阳区 海淀区 东城区 西城区 丰台区 通州区 昌平区 大兴区")],
    ),
    (
        "上海市",
        "上海",
        "沪",
        "Shanghai",
        10,
        [("上海市", "Shanghai", "021", 1, "浦东新区 闵行区 徐汇区 静安区 黄浦区 长宁区 杨浦区 宝山区 普陀区 松江区")],
    ),
    ("天津市", "天津", "津", "Tianjin", 3, [("天津市", "Tianjin", "022", 1, "和平区 河西区 南开区 河东区 滨海新区")]),
    (
        "重庆市",
        "重庆",
        "渝",
        "Chongqing",
        4,
        [("重庆市", "Chongqing", "023", 1, "渝中区 江北区 南岸区 沙坪坝区 渝北区 九龙坡区")],
    ),
    (
        "广东省",
        "广东",
        "粤",
        "Guangdong",
        14,
        [
            ("广州市", "Guangzhou", "020", 5, "天河区 越秀区 海珠区 番禺区 白云区 荔湾区"),
            ("深圳市", "Shenzhen", "0755", 5, "南山区 福田区 罗湖区 宝安区 龙岗区 龙华区"),
            ("佛山市", "Foshan", "0757", 2, "禅城区 南海区 顺德区"),
            ("珠海市", "Zhuhai", "0756", 1, "香洲区 斗门区 金湾区"),
        ],
    ),
    (
        "浙江省",
        "浙江",
        "浙",
        "Zhejiang",
        9,
        [
            ("杭州市", "Hangzhou", "0571", 5, "西湖区 上城区 拱墅区 滨江区 余杭区 萧山区"),
            ("宁波市", "Ningbo", "0574", 3, "海曙区 鄞州区 江北区 北仑区"),
            ("温州市", "Wenzhou", "0577", 2, "鹿城区 瓯海区 龙湾区"),
        ],
    ),
    (
        "江苏省",
        "江苏",
        "苏",
        "Jiangsu",
        9,
        [
            ("南京市", "Nanjing", "025", 4, "玄武区 秦淮区 鼓楼区 建邺区 江宁区 栖霞区"),
            ("苏州市", "Suzhou", "0512", 4, "姑苏区 吴中区 相城区 虎丘区 吴江区"),
            ("无锡市", "Wuxi", "0510", 2, "梁溪区 滨湖区 新吴区 锡山区"),
        ],
    ),
    (
        "四川省",
        "四川",
        "川",
        "Sichuan",
        6,
        [
            ("成都市", "Chengdu", "028", 5, "锦江区 青羊区 武侯区 成华区 金牛区 双流区"),
            ("绵阳市", "Mianyang", "0816", 1, "涪城区 游仙区"),
        ],
    ),
    (
        "湖北省",
        "湖北",
        "鄂",
        "Hubei",
        5,
        [
            ("武汉市", "Wuhan", "027", 5, "江岸区 江汉区 武昌区 洪山区 汉阳区 硚口区"),
            ("宜昌市", "Yichang", "0717", 1, "西陵区 伍家岗区 夷陵区"),
        ],
    ),
    (
        "山东省",
        "山东",
        "鲁",
        "Shandong",
        6,
        [
            ("济南市", "Jinan", "0531", 3, "历下区 市中区 槐荫区 历城区 天桥区"),
            ("青岛市", "Qingdao", "0532", 3, "市南区 市北区 崂山区 黄岛区 李沧区"),
        ],
    ),
    (
        "河南省",
        "河南",
        "豫",
        "Henan",
        5,
        [
            ("郑州市", "Zhengzhou", "0371", 4, "金水区 二七区 中原区 管城回族区 惠济区"),
            ("洛阳市", "Luoyang", "0379", 1, "西工区 老城区 洛龙区 涧西区"),
        ],
    ),
    (
        "福建省",
        "福建",
        "闽",
        "Fujian",
        4,
        [
            ("福州市", "Fuzhou", "0591", 2, "鼓楼区 台江区 仓山区 晋安区"),
            ("厦门市", "Xiamen", "0592", 2, "思明区 湖里区 集美区 海沧区"),
        ],
    ),
    ("湖南省", "湖南", "湘", "Hunan", 4, [("长沙市", "Changsha", "0731", 1, "芙蓉区 天心区 岳麓区 开福区 雨花区")]),
    (
        "陕西省",
        "陕西",
        "陕",
        "Shaanxi",
        3,
        [("西安市", "Xi'an", "029", 1, "雁塔区 碑林区 莲湖区 新城区 未央区 长安区")],
    ),
    (
        "辽宁省",
        "辽宁",
        "辽",
        "Liaoning",
        3,
        [
            ("沈阳市", "Shenyang", "024", 2, "和平区 沈河区 皇姑区 铁西区 浑南区"),
            ("大连市", "Dalian", "0411", 2, "中山区 西岗区 沙河口区 甘井子区"),
        ],
    ),
    ("安徽省", "安徽", "皖", "Anhui", 3, [("合肥市", "Hefei", "0551", 1, "蜀山区 包河区 庐阳区 瑶海区")]),
]

_ROADS = (
    "人民路 中山路 解放路 建设路 和平路 长江路 黄河路 新华路 胜利路 文化路 学府路 光明路 幸福路 迎宾路 "
    "青年路 朝阳路 东风路 南京路 北京路 延安路 淮海路 复兴路 滨江大道 世纪大道 科技园路 创业路 湖滨路 "
    "环城北路 工业大道 府前街 花园路 银河路 星光大道 春晓路 丽水路 锦绣路 平安大街 望江路 建国路 友谊路"
).split()
_COMPOUNDS = (
    "阳光花园 金色家园 翠湖苑 万科城 碧桂园 绿地世纪城 保利花园 华润城 锦绣江南 紫金苑 幸福里 书香门第 "
    "明珠苑 龙湖春江郦城 中海国际社区 世茂滨江 恒大名都 招商花园 融创壹号院 香樟园"
).split()
_BRANDS = (
    "华信 腾远 金瑞 恒达 中科 天宇 博远 众诚 新锐 汇通 宏图 鼎盛 联创 卓越 瑞丰 嘉禾 百川 远航 正泰 海纳 "
    "星辰 明德 安信 盛世 东方 长城 蓝海 银河 创新 智联 云帆 万象 鸿运 金桥 同创 达安 凯盛 润泽 方圆 骏马"
).split()
_INDUSTRIES = (
    "科技 贸易 电子 信息技术 餐饮管理 物流 建设工程 医药 文化传媒 咨询 实业 网络科技 供应链管理 教育科技 "
    "投资管理 环保科技 食品 服饰"
).split()
_HANDLES = "sunny happy lucky tiger panda coco star moon snow rain ocean angel kiki momo xiaoyu dragon".split()
_CN_NICKS = (
    "快乐的小鱼 追风少年 吃货一枚 岁月静好 阳光男孩 小确幸 爱吃鱼的猫 向日葵 风中的蒲公英 夏天的风 小蜗牛 一只小可爱"
).split()

# Email domains: (domain, weight, typo).
_DOMAINS = [
    ("qq.com", 33, "qq.con"),
    ("163.com", 20, "163.cm"),
    ("126.com", 8, "126.con"),
    ("gmail.com", 5, "gmial.com"),
    ("sina.com", 5, "sina.con"),
    ("hotmail.com", 5, "hotmial.com"),
    ("outlook.com", 5, "outlok.com"),
    ("foxmail.com", 4, "foxmial.com"),
    ("139.com", 4, "139.con"),
    ("sohu.com", 3, "sohu.cm"),
    ("aliyun.com", 3, "aliyun.con"),
    ("icloud.com", 3, "icloud.cm"),
]
_MOBILE_PREFIXES = np.array(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 170 173 175 176 177 178 "
    "180 181 182 183 185 186 187 188 189 191 198 199".split(),
    dtype=np.int64,
)

_CONSENT = ["是", "否", "Y", "N", "1", "0", "true", "false", ""]
_CONSENT_P = [0.18, 0.16, 0.1, 0.08, 0.1, 0.08, 0.06, 0.05, 0.19]
_TIERS = ["潜在", "普通", "VIP"]
_GENDERS = [("男", "女"), ("M", "F"), ("male", "female"), ("", "")]


# ============================================================================ string helpers
def _sarr(values: list[str] | np.ndarray) -> np.ndarray:
    return np.array(values, dtype=_S)


def _cat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation of string arrays and scalars."""
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    assert isinstance(out, np.ndarray)
    return out


def _istr(x: np.ndarray, width: int = 0) -> np.ndarray:
    s = np.asarray(x).astype(_S)
    return np.strings.zfill(s, width) if width else s


def _translate(a: np.ndarray, table: dict[int, int] | dict[int, str]) -> np.ndarray:
    """``str.translate`` on every element (numpy's stubs type the table as ``str``; a mapping works)."""
    return np.strings.translate(a, table)  # type: ignore[call-overload]


def _pick(u: np.ndarray, probs: list[float] | np.ndarray) -> np.ndarray:
    """Category index for uniform draws ``u`` under the given probabilities."""
    cum = np.cumsum(np.asarray(probs, dtype=float))
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(cum) - 1)


def _fill(out: np.ndarray, mask: np.ndarray, values: np.ndarray | str) -> None:
    if mask.any():
        out[mask] = values


def _nonempty(a: np.ndarray) -> np.ndarray:
    return np.strings.str_len(a) > 0


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct integers in ``[low, high)`` in random order (deterministic for the rng)."""
    got = np.empty(0, dtype=np.int64)
    while len(got) < n:
        cand = rng.integers(low, high, size=int((n - len(got)) * 1.05) + 16, dtype=np.int64)
        allv = np.concatenate([got, cand])
        _, first = np.unique(allv, return_index=True)
        got = allv[np.sort(first)]
    return got[:n]


def _dedupe_suffix(rng: np.random.Generator, local: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """Append digits to email local parts until every (local, domain) pair is unique."""
    local = local.copy()
    for _ in range(20):
        key = _cat(local, "@", _istr(dom))
        has = _nonempty(local)
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(local), dtype=bool)
        dup[first] = False
        dup &= has
        if not dup.any():
            return local
        local[dup] = _cat(local[dup], _istr(rng.integers(1, 1000, dup.sum())))
    return local


# ============================================================================ reference arrays
class _Ref:
    """The reference data as numpy arrays (built once, deterministic)."""

    def __init__(self) -> None:
        self.sur = _sarr(_SURNAMES)
        self.sur_py = _sarr(_SURNAME_PY)
        self.sur_py_cap = np.strings.capitalize(self.sur_py)
        # given-name characters; index -1 is a sentinel for "no second character"
        self.chars = _sarr([*_CHARS, ""])
        self.char_py = _sarr([*_CHAR_PY, ""])
        self.male_pool = np.array([_CHAR_INDEX[c] for c in _MALE_CHARS])
        self.female_pool = np.array([_CHAR_INDEX[c] for c in _FEMALE_CHARS])
        self.neutral_pool = np.array([_CHAR_INDEX[c] for c in _NEUTRAL_CHARS])
        self.top = []
        for spec in (_MALE_TOP, _FEMALE_TOP):
            items = [(m.group(1), float(m.group(2))) for m in re.finditer(r"([\u4e00-\u9fff]+)([\d.]+)", spec)]
            g1 = np.array([_CHAR_INDEX[g[0]] for g, _ in items])
            g2 = np.array([_CHAR_INDEX[g[1]] if len(g) > 1 else -1 for g, _ in items])
            w = np.array([w for _, w in items])
            self.top.append((g1, g2, w / w.sum()))
        sur_index = {s: i for i, s in enumerate(_SURNAMES)}
        self.common_sur = np.array([sur_index[s] for s, _, _, _ in _COMMON_FULL])
        self.common_g1 = np.array([_CHAR_INDEX[g[0]] for _, g, _, _ in _COMMON_FULL])
        self.common_g2 = np.array([_CHAR_INDEX[g[1]] if len(g) > 1 else -1 for _, g, _, _ in _COMMON_FULL])
        self.common_gender = np.array([x for _, _, x, _ in _COMMON_FULL], dtype=np.int8)
        w = np.array([x for _, _, _, x in _COMMON_FULL], dtype=float)
        self.common_p = w / w.sum()
        self.en = _sarr(_EN_MALE + _EN_FEMALE)
        self.en_split = len(_EN_MALE)
        # homophone alternatives, 3 per character (the character itself when none)
        self.homo_sur = np.array(
            [[(_HOMOPHONES.get(s, s) * 3)[k] if len(s) == 1 else s for k in range(3)] for s in _SURNAMES], dtype=_S
        )
        self.homo_char = np.array(
            [[(_HOMOPHONES.get(c, c) * 3)[k] for k in range(3)] for c in _CHARS] + [["", "", ""]], dtype=_S
        )
        # geography
        prov_rows: list[tuple[str, str, str, str, bool]] = []
        city_rows: list[tuple[str, str, str, str, int]] = []
        dist_rows: list[tuple[str, str, int, float]] = []
        for p_i, (p_std, p_short, p_abbr, p_en, p_w, cities) in enumerate(_GEO_SPEC):
            prov_rows.append((p_std, p_short, p_abbr, p_en, p_std.endswith("市")))
            cw = np.array([c[3] for c in cities], dtype=float)
            for c_j, (c_std, c_en, area, _cw, dists) in enumerate(cities):
                c_i = len(city_rows)
                city_rows.append((c_std, c_std.removesuffix("市"), c_en, area, p_i))
                names = dists.split()
                dw = 1.0 / np.sqrt(np.arange(1, len(names) + 1))
                dw = dw / dw.sum()
                for d_k, d in enumerate(names):
                    dist_rows.append(
                        (d, _short_district(d), c_i, p_w / sum(x[4] for x in _GEO_SPEC) * cw[c_j] / cw.sum() * dw[d_k])
                    )
        self.prov_std = _sarr([r[0] for r in prov_rows])
        self.prov_short = _sarr([r[1] for r in prov_rows])
        self.prov_abbr = _sarr([r[2] for r in prov_rows])
        self.prov_en = _sarr([r[3] for r in prov_rows])
        self.prov_muni = np.array([r[4] for r in prov_rows])
        self.city_std = _sarr([r[0] for r in city_rows])
        self.city_short = _sarr([r[1] for r in city_rows])
        self.city_en = _sarr([r[2] for r in city_rows])
        self.city_area = _sarr([r[3] for r in city_rows])
        self.city_prov = np.array([r[4] for r in city_rows])
        self.dist_std = _sarr([r[0] for r in dist_rows])
        self.dist_short = _sarr([r[1] for r in dist_rows])
        self.dist_city = np.array([r[2] for r in dist_rows])
        self.dist_prov = self.city_prov[self.dist_city]
        p = np.array([r[3] for r in dist_rows])
        self.dist_p = p / p.sum()
        self.city_first = np.searchsorted(self.dist_city, np.arange(len(city_rows)), side="left")
        self.city_ndist = np.bincount(self.dist_city, minlength=len(city_rows))
        city_p = np.bincount(self.dist_city, weights=self.dist_p)
        self.city_p = city_p / city_p.sum()
        self.roads = _sarr(_ROADS)
        self.compounds = _sarr(_COMPOUNDS)
        self.brands = _sarr(_BRANDS)
        self.industries = _sarr(_INDUSTRIES)
        self.handles = _sarr(_HANDLES)
        self.cn_nicks = _sarr(_CN_NICKS)
        self.dom = _sarr([d for d, _, _ in _DOMAINS] + [""])
        self.dom_typo = _sarr([t for _, _, t in _DOMAINS] + [""])
        w = np.array([w for _, w, _ in _DOMAINS], dtype=float)
        self.dom_p = w / w.sum()
        self.consent = _sarr(_CONSENT)
        self.tiers = _sarr(_TIERS)
        # lookup tables for fast formatting
        self.num2 = _istr(np.arange(100), 2)
        self.num1 = _istr(np.arange(100))
        self.year = _istr(np.arange(2100))
        secs = np.arange(_DAY)
        self.clock = _cat(self.num2[secs // 3600], ":", self.num2[secs // 60 % 60], ":", self.num2[secs % 60])


def _short_district(d: str) -> str:
    for suffix in ("回族区", "新区", "区"):
        if d.endswith(suffix) and len(d) > len(suffix) + 1:
            return d[: -len(suffix)]
    return d


_REF: _Ref | None = None


def _ref() -> _Ref:
    global _REF
    if _REF is None:
        _REF = _Ref()
    return _REF


# ============================================================================ time
_EPOCH = date(1970, 1, 1)


def _sec(d: date, hour: int = 0) -> int:
    return (d - _EPOCH).days * _DAY + hour * 3600


class _Clock:
    """Export batches and time formatting. Times are int64 seconds of Asia/Shanghai wall time."""

    def __init__(self, start: date, days: int) -> None:
        self.days = days
        self.dates = [start + timedelta(days=k) for k in range(days)]
        self.exports = np.array([_sec(d, 3) for d in self.dates], dtype=np.int64)
        self.first = int(self.exports[0])
        self.last = int(self.exports[-1])
        self.hist_lo = _sec(date(start.year - 10, 1, 1))
        later = min(0.1, 0.4 / (days - 1)) if days > 1 else 0.0
        self.weights = np.array([1.0 - later * (days - 1)] + [later] * (days - 1))
        self.day0 = (date(1930, 1, 1) - _EPOCH).days
        n_days = (start + timedelta(days=days + 800) - date(1930, 1, 1)).days
        dates = np.arange(self.day0, self.day0 + n_days).astype("datetime64[D]")
        self.date_str = np.datetime_as_string(dates).astype(_S)

    def batch_of(self, t: np.ndarray) -> np.ndarray:
        """The batch whose export (first one at or after ``t``) holds an event at ``t``."""
        return np.minimum(np.searchsorted(self.exports, t, side="left"), self.days - 1)

    def draw(
        self, rng: np.random.Generator, lower: np.ndarray, span0: int, batch: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times in a batch interval (random by weight unless given), not before ``lower``.

        Batch 0 covers ``[first export - span0, first export)``, batch k ``[export k-1, export k)``.
        When ``lower`` is past the interval the time moves to the batch containing ``lower``;
        ``ok`` is False where ``lower`` is past the last export.
        """
        n = len(lower)
        lower = np.asarray(lower, dtype=np.int64)
        b = rng.choice(self.days, size=n, p=self.weights) if batch is None else np.asarray(batch).copy()
        u = rng.random(n)
        lo = np.where(b == 0, self.first - span0, self.exports[np.maximum(b - 1, 0)])
        lo = np.maximum(lo, lower)
        hi = self.exports[b]
        bad = lo >= hi
        if bad.any():
            nb = np.searchsorted(self.exports, lower[bad], side="right")
            b[bad] = np.minimum(nb, self.days - 1)
            lo[bad] = lower[bad]
            hi[bad] = self.exports[b[bad]]
        ok = lo < hi
        t = lo + (u * np.maximum(hi - lo, 0)).astype(np.int64)
        return t, b, ok

    def local(self, t: np.ndarray) -> np.ndarray:
        """``2026-11-20 13:05:00``."""
        r = _ref()
        return _cat(self.date_str[t // _DAY - self.day0], " ", r.clock[t % _DAY])

    def iso(self, t: np.ndarray) -> np.ndarray:
        """``2026-11-20T13:05:00+08:00``."""
        r = _ref()
        return _cat(self.date_str[t // _DAY - self.day0], "T", r.clock[t % _DAY], "+08:00")

    def epoch_ms(self, t: np.ndarray, ms: np.ndarray) -> np.ndarray:
        return (t - 8 * 3600) * 1000 + ms


# ============================================================================ people
@dataclass
class _People:
    n: int
    gender: np.ndarray  # 0 male, 1 female
    sur: np.ndarray
    g1: np.ndarray
    g2: np.ndarray  # -1: single-character given name
    en: np.ndarray  # -1: Chinese canonical name, else index of the Latin first name
    name: np.ndarray  # canonical name
    giv: np.ndarray  # given name (Chinese)
    giv_py: np.ndarray
    by: np.ndarray
    bm: np.ndarray
    bd: np.ndarray
    dist_new: np.ndarray
    dist_old: np.ndarray
    addr_pool: np.ndarray  # street addresses; people point into it
    addr_new: np.ndarray  # index into addr_pool
    addr_old: np.ndarray
    move_at: np.ndarray
    mob_old: np.ndarray  # 11-digit mobile as int64
    mob_new: np.ndarray
    mob_at: np.ndarray
    email_local: np.ndarray  # '' when the person has no own mailbox
    email_dom: np.ndarray  # index into _Ref.dom (last = none)
    comp_new: np.ndarray  # -1: none
    comp_old: np.ndarray
    comp_at: np.ndarray
    head: np.ndarray  # household head (self for singles and heads)
    mailbox: np.ndarray  # uses the head's mailbox
    landline: np.ndarray  # '' when the household has none
    window_change: np.ndarray  # first change inside the export window, _INF if none
    companies: dict[str, np.ndarray] = field(default_factory=dict)

    def dist_at(self, pi: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(t >= self.move_at[pi], self.dist_new[pi], self.dist_old[pi])

    def addr_at(self, pi: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.addr_pool[np.where(t >= self.move_at[pi], self.addr_new[pi], self.addr_old[pi])]

    def mob_at_time(self, pi: np.ndarray, t: np.ndarray) -> np.ndarray:
        return _istr(np.where(t >= self.mob_at[pi], self.mob_new[pi], self.mob_old[pi]))

    def comp_at_time(self, pi: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(t >= self.comp_at[pi], self.comp_new[pi], self.comp_old[pi])

    def email(self, pi: np.ndarray) -> np.ndarray:
        r = _ref()
        e = _cat(self.email_local[pi], "@", r.dom[self.email_dom[pi]])
        return np.where(_nonempty(self.email_local[pi]), e, "")


def _addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    r = _ref()
    road = r.roads[rng.integers(0, len(r.roads), n)]
    num = _istr(rng.integers(1, 1200, n))
    comp = r.compounds[rng.integers(0, len(r.compounds), n)]
    bld = _istr(rng.integers(1, 40, n))
    unit = _istr(rng.integers(1, 6, n))
    room = _cat(_istr(rng.integers(1, 33, n)), r.num2[rng.integers(1, 7, n)])
    lane = _istr(rng.integers(1, 90, n))
    style = _pick(rng.random(n), [0.45, 0.3, 0.25])
    out = _cat(road, num, "号", comp, bld, "栋", unit, "单元", room, "室")
    m = style == 1
    _fill(out, m, _cat(road[m], num[m], "弄", lane[m], "号", room[m], "室"))
    m = style == 2
    _fill(out, m, _cat(road[m], num[m], "号", comp[m], bld[m], "号楼", room[m], "室"))
    return out


def _change_times(rng: np.random.Generator, clock: _Clock, mask: np.ndarray, window_share: float) -> np.ndarray:
    n = len(mask)
    out = np.full(n, _INF, dtype=np.int64)
    k = int(mask.sum())
    past = rng.integers(clock.hist_lo + 2 * 365 * _DAY, clock.first - _DAY, k)
    if clock.days > 1:
        win = rng.integers(clock.first + 60, clock.last - 60, k)
        past = np.where(rng.random(k) < window_share, win, past)
    out[mask] = past
    return out


def _make_people(rng: np.random.Generator, n: int, clock: _Clock, trap: np.random.Generator | None = None) -> _People:
    """The people; ``trap`` (a second generator, so that the main stream and every pattern drawn
    from it stay as they were) adds the traps of :func:`_name_twins` and shared name emails."""
    r = _ref()
    gender = (rng.random(n) < 0.52).astype(np.int8)
    sur = rng.choice(len(r.sur), size=n, p=_SURNAME_P)
    g1 = np.full(n, -1, dtype=np.int64)
    g2 = np.full(n, -1, dtype=np.int64)
    top = rng.random(n) < 0.35
    for gval, pool in ((0, r.male_pool), (1, r.female_pool)):
        tg1, tg2, tp = r.top[gval]
        m = top & (gender == gval)
        pick = rng.choice(len(tg1), size=int(m.sum()), p=tp)
        g1[m], g2[m] = tg1[pick], tg2[pick]
        m = ~top & (gender == gval)
        k = int(m.sum())
        first_pool = np.concatenate([pool, r.neutral_pool])
        c1 = first_pool[rng.integers(0, len(first_pool), k)]
        c2 = pool[rng.integers(0, len(pool), k)]
        single = rng.random(k) < 0.2
        g1[m] = np.where(single, c2, c1)
        g2[m] = np.where(single, -1, c2)
    boost = rng.random(n) < 0.008
    pick = rng.choice(len(r.common_p), size=int(boost.sum()), p=r.common_p)
    sur[boost], g1[boost], g2[boost], gender[boost] = (
        r.common_sur[pick],
        r.common_g1[pick],
        r.common_g2[pick],
        r.common_gender[pick],
    )
    en = np.full(n, -1, dtype=np.int64)
    latin = rng.random(n) < 0.01
    k = int(latin.sum())
    en_m = rng.integers(0, r.en_split, k)
    en_f = rng.integers(r.en_split, len(r.en), k)
    en[latin] = np.where(gender[latin] == 1, en_f, en_m)

    # birth dates: adults 1950-2006
    by = rng.integers(1950, 2007, n)
    by = np.where(rng.random(n) < 0.6, rng.integers(1975, 2003, n), by)
    bm = rng.integers(1, 13, n)
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    bd = 1 + (rng.random(n) * month_days[bm]).astype(np.int64)

    # households: 18 % of people in groups of 2-4 sharing address, landline, maybe a mailbox
    head = np.arange(n)
    perm = rng.permutation(n)
    sizes = rng.choice([2, 3, 4], size=max(1, int(n * 0.18) // 2), p=[0.6, 0.3, 0.1])
    sizes = sizes[np.cumsum(sizes) <= int(n * 0.18)]
    in_hh = np.zeros(n, dtype=bool)
    mailbox = np.zeros(n, dtype=bool)
    if len(sizes):
        members = perm[: int(sizes.sum())]
        group = np.repeat(np.arange(len(sizes)), sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        heads = members[starts]
        head[members] = heads[group]
        in_hh[members] = True
        child = (head != np.arange(n)) & (rng.random(n) < 0.6)
        sur = np.where(child & (en < 0), sur[head], sur)
        by = np.where(child, np.minimum(by[head] + rng.integers(24, 33, n), 2006), by)
        hh_mailbox = rng.random(n) < 0.35
        mailbox = (head != np.arange(n)) & hh_mailbox[head]

    twins = _name_twins(trap, sur, g1, g2, gender, en, head) if trap is not None else None
    sur_s = r.sur[sur]
    giv = _cat(r.chars[g1], r.chars[g2])
    giv_py = _cat(r.char_py[g1], r.char_py[g2])
    name = _cat(sur_s, giv)
    latin_name = _cat(r.en[np.maximum(en, 0)], " ", r.sur_py_cap[sur])
    name = np.where(en >= 0, latin_name, name)

    # geography and moves (household members follow their head)
    dist_new = rng.choice(len(r.dist_p), size=n, p=r.dist_p)
    moved = rng.random(n) < 0.08
    same_city = rng.random(n) < 0.55
    c = r.dist_city[dist_new]
    step = 1 + (rng.random(n) * np.maximum(r.city_ndist[c] - 1, 1)).astype(np.int64)
    other_in_city = r.city_first[c] + (dist_new - r.city_first[c] + step) % r.city_ndist[c]
    anywhere = rng.choice(len(r.dist_p), size=n, p=r.dist_p)
    dist_old = np.where(moved, np.where(same_city, other_in_city, anywhere), dist_new)
    n_moved = int(moved.sum())
    addr_pool = _addresses(rng, n + n_moved)
    addr_new = np.arange(n)
    addr_old = addr_new.copy()
    addr_old[moved] = n + np.arange(n_moved)
    move_at = _change_times(rng, clock, moved, 0.25)
    dist_new, dist_old, addr_new, addr_old, move_at = (
        a[head] for a in (dist_new, dist_old, addr_new, addr_old, move_at)
    )
    if twins is not None:
        twin, other = twins
        # a twin lives in a district of the other's city (a different flat, its own mobile)
        same = dist_old[twin] == dist_new[twin]
        dist_new[twin] = dist_new[other]
        dist_old[twin] = np.where(same, dist_new[other], dist_old[twin])

    # mobiles, unique; 12 % changed number at some point
    changed = rng.random(n) < 0.12
    n_mob = n + int(changed.sum())
    suffix = _unique_ints(rng, n_mob, 0, 10**8)
    prefix = _MOBILE_PREFIXES[rng.integers(0, len(_MOBILE_PREFIXES), n_mob)]
    mobiles = prefix * 10**8 + suffix
    mob_old = mobiles[:n]
    mob_new = mob_old.copy()
    mob_new[changed] = mobiles[n:]
    mob_at = _change_times(rng, clock, changed, 0.25)

    # landlines: 45 % of households, 8 % of single people
    has_land = np.where(in_hh, rng.random(n) < 0.45, rng.random(n) < 0.08)[head]
    land_num = _istr(rng.integers(2, 9, n) * 10**7 + rng.integers(0, 10**7, n))
    landline = _cat(r.city_area[r.dist_city[dist_new]], "-", land_num)[head]
    landline = np.where(has_land, landline, "")

    # emails
    has_email = np.where(mailbox, rng.random(n) < 0.5, rng.random(n) < 0.9)
    dom = rng.choice(len(_DOMAINS), size=n, p=r.dom_p)
    style = _pick(rng.random(n), [0.2, 0.25, 0.08, 0.06, 0.08, 0.2, 0.13])
    sur_py = r.sur_py[sur]
    yy = np.where(rng.random(n) < 0.5, r.year[by], r.num2[by % 100])
    digits = _istr(rng.integers(1, 1000, n))
    initials = _cat(
        np.strings.slice(sur_py, 0, 1), np.strings.slice(r.char_py[g1], 0, 1), np.strings.slice(r.char_py[g2], 0, 1)
    )
    local = _cat(sur_py, giv_py)
    _fill(local, style == 1, _cat(sur_py, giv_py, np.where(rng.random(n) < 0.6, yy, digits))[style == 1])
    _fill(local, style == 2, _cat(giv_py, ".", sur_py)[style == 2])
    _fill(local, style == 3, _cat(sur_py, "_", giv_py)[style == 3])
    _fill(local, style == 4, _cat(initials, _istr(rng.integers(1000, 10000, n)))[style == 4])
    qq = style == 5
    _fill(local, qq, _istr(rng.integers(10**5, 3 * 10**9, n))[qq])
    dom = np.where(qq, 0, dom)
    m = style == 6
    _fill(local, m, _cat(r.handles[rng.integers(0, len(r.handles), n)], _istr(rng.integers(1, 10000, n)))[m])
    m = en >= 0
    _fill(local, m, _cat(np.strings.lower(r.en[np.maximum(en, 0)]), np.where(rng.random(n) < 0.5, ".", ""), sur_py)[m])
    local = np.where(has_email, local, "")
    local = _dedupe_suffix(rng, local, dom)
    dom = np.where(has_email, dom, len(_DOMAINS))
    if trap is not None:
        local, dom = _shared_name_emails(trap, local, dom, _cat(sur_py, giv_py), name, en, style)

    # employers: a pool of companies, 45 % employed, 5 % of those changed employer
    n_comp = max(30, n // 25)
    comp_city = rng.choice(len(r.city_p), size=n_comp, p=r.city_p)
    comp_brand = r.brands[rng.integers(0, len(r.brands), n_comp)]
    comp_ind = r.industries[rng.integers(0, len(r.industries), n_comp)]
    cshort = r.city_short[comp_city]
    core = _cat(comp_brand, comp_ind)
    companies = {
        "canonical": _cat(cshort, core, "有限公司"),
        "llc": _cat(cshort, core, "有限责任公司"),
        "paren": _cat(core, "(", cshort, ")有限公司"),
        "fwparen": _cat(core, "（", cshort, "）有限公司"),
        "short": core,
    }
    zipf = 1.0 / np.arange(1, n_comp + 1) ** 0.8
    employed = rng.random(n) < 0.45
    comp_new = np.where(employed, rng.choice(n_comp, size=n, p=zipf / zipf.sum()), -1)
    comp_changed = employed & (rng.random(n) < 0.05)
    comp_old = np.where(comp_changed, rng.integers(0, n_comp, n), comp_new)
    comp_at = _change_times(rng, clock, comp_changed, 0.25)

    window = np.full(n, _INF, dtype=np.int64)
    for at in (mob_at, move_at, comp_at):
        window = np.minimum(window, np.where((at >= clock.first) & (at < _INF), at, _INF))

    return _People(
        n=n,
        gender=gender,
        sur=sur,
        g1=g1,
        g2=g2,
        en=en,
        name=name,
        giv=giv,
        giv_py=giv_py,
        by=by,
        bm=bm,
        bd=bd,
        dist_new=dist_new,
        dist_old=dist_old,
        addr_pool=addr_pool,
        addr_new=addr_new,
        addr_old=addr_old,
        move_at=move_at,
        mob_old=mob_old,
        mob_new=mob_new,
        mob_at=mob_at,
        email_local=local,
        email_dom=dom,
        comp_new=comp_new,
        comp_old=comp_old,
        comp_at=comp_at,
        head=head,
        mailbox=mailbox,
        landline=landline,
        window_change=window,
        companies=companies,
    )


#: share of people given the name (or a homophone of it) of another person of their city
TWIN_SHARE = 0.005
#: share of the pinyin-of-the-name mailboxes written as the bare pinyin at a big provider, so
#: that different people of one name share them (or look as if they did)
SHARED_NAME_EMAIL_SHARE = 0.5


def _name_twins(
    trap: np.random.Generator,
    sur: np.ndarray,
    g1: np.ndarray,
    g2: np.ndarray,
    gender: np.ndarray,
    en: np.ndarray,
    head: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Give ``TWIN_SHARE`` of the single people (no household) the name of another person, or a
    homophone of it (王伟/王玮), in place; the geography later moves them to that person's city.
    Nothing else is shared: their own birth date, mobile, address. Returns (twins, whose name)."""
    n = len(sur)
    r = _ref()
    single = (head == np.arange(n)) & (np.bincount(head, minlength=n) == 1) & (en < 0)
    twin = np.flatnonzero(single & (trap.random(n) < TWIN_SHARE))
    other = trap.integers(0, n, len(twin))
    ok = (en[other] < 0) & (other != twin)
    twin, other = twin[ok], other[ok]
    sur[twin], g1[twin], g2[twin], gender[twin] = sur[other], g1[other], g2[other], gender[other]
    homo = trap.random(len(twin)) < 0.4
    k = trap.integers(0, 3, len(twin))
    last = np.where(g2[twin] >= 0, g2[twin], g1[twin])
    alt = np.array([_CHAR_INDEX.get(str(c), -1) for c in r.homo_char[np.maximum(last, 0), k]], dtype=np.int64)
    swap = homo & (alt >= 0) & (alt != last)
    has2 = g2[twin] >= 0
    g2[twin[swap & has2]] = alt[swap & has2]
    g1[twin[swap & ~has2]] = alt[swap & ~has2]
    return twin, other


def _shared_name_emails(
    trap: np.random.Generator,
    local: np.ndarray,
    dom: np.ndarray,
    pinyin: np.ndarray,
    name: np.ndarray,
    en: np.ndarray,
    style: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mailboxes that are the pinyin of the name (``zhangwei@163.com``), without the digits that
    kept them unique, at one of the two big providers: people of one name then share them."""
    n = len(local)
    _, inverse, counts = np.unique(name, return_inverse=True, return_counts=True)
    shared_name = counts[inverse] > 1
    pick = (
        (style <= 3)
        & (style != 1)
        & (en < 0)
        & shared_name
        & _nonempty(local)
        & (trap.random(n) < SHARED_NAME_EMAIL_SHARE)
    )
    local = local.copy()
    dom = dom.copy()
    local[pick] = pinyin[pick]
    dom[pick] = np.where(trap.random(int(pick.sum())) < 0.6, 0, 1)  # qq.com, 163.com
    return local, dom


# ============================================================================ rendering
# name styles: clean, "王 伟", "王　伟" (full-width space; full-width letters for Latin names), traditional
# characters, pinyin ("Zhang Wei", "Wei Zhang", "ZHANG Wei"), stray outer space, homophone typo, "王先生"
_NAME_P = {
    "crm": [0.80, 0.04, 0.02, 0.05, 0.03, 0.04, 0.0, 0.02],
    "callcenter": [0.60, 0.03, 0.01, 0.02, 0.02, 0.02, 0.20, 0.10],
    "store_pos": [0.84, 0.04, 0.02, 0.05, 0.01, 0.04, 0.0, 0.0],
    "ecommerce": [0.85, 0.03, 0.01, 0.03, 0.05, 0.03, 0.0, 0.0],
}


def _render_name(P: _People, pi: np.ndarray, u: np.ndarray, u2: np.ndarray, probs: list[float]) -> np.ndarray:
    r = _ref()
    style = _pick(u, probs)
    latin = P.en[pi] >= 0
    canon = P.name[pi]
    out = canon.copy()
    sur_s = r.sur[P.sur[pi]]
    giv = P.giv[pi]
    zh = ~latin
    m = (style == 1) & zh
    _fill(out, m, _cat(sur_s[m], " ", giv[m]))
    m = (style == 2) & zh
    _fill(out, m, _cat(sur_s[m], "\u3000", giv[m]))
    m = (style == 2) & latin
    _fill(out, m, _translate(canon[m], _FULLWIDTH))
    m = style == 3
    _fill(out, m, _translate(canon[m], _TRAD))
    m = (style == 4) & zh
    if m.any():
        sp = r.sur_py_cap[P.sur[pi[m]]]
        gp = np.strings.capitalize(P.giv_py[pi[m]])
        sub = _pick(u2[m], [0.5, 0.25, 0.15, 0.1])
        v = _cat(sp, " ", gp)
        v = np.where(sub == 1, _cat(gp, " ", sp), v)
        v = np.where(sub == 2, _cat(np.strings.upper(sp), " ", gp), v)
        v = np.where(sub == 3, np.strings.lower(_cat(sp, " ", gp)), v)
        out[m] = v
    m = (style == 4) & latin
    _fill(out, m, np.strings.upper(canon[m]))
    m = style == 5
    _fill(out, m, np.where(u2[m] < 0.5, _cat(canon[m], " "), _cat(" ", canon[m])))
    m = (style == 6) & zh
    if m.any():
        pm = pi[m]
        k = (u2[m] * 3).astype(np.int64)
        # pick the character to mishear among those that have a homophone (surname, given 1, given 2)
        avail = np.stack(
            [
                r.homo_sur[P.sur[pm], k] != r.sur[P.sur[pm]],
                r.homo_char[P.g1[pm], k] != r.chars[P.g1[pm]],
                (P.g2[pm] >= 0) & (r.homo_char[P.g2[pm], k] != r.chars[P.g2[pm]]),
            ],
            axis=1,
        )
        w = avail * np.array([0.25, 0.3, 0.45])
        cum = np.cumsum(w, axis=1)
        which = np.argmax(cum > (u2[m] * 7 % 1)[:, None] * np.maximum(cum[:, 2:], 1e-12), axis=1)
        which = np.where(avail.any(axis=1), which, -1)
        s_part = np.where(which == 0, r.homo_sur[P.sur[pm], k], r.sur[P.sur[pm]])
        g1_part = np.where(which == 1, r.homo_char[P.g1[pm], k], r.chars[P.g1[pm]])
        g2_part = np.where(which == 2, r.homo_char[P.g2[pm], k], r.chars[P.g2[pm]])
        out[m] = _cat(s_part, g1_part, g2_part)
    m = (style == 7) & zh
    _fill(out, m, _cat(sur_s[m], np.where(P.gender[pi[m]] == 1, "女士", "先生")))
    m = (style == 7) & latin
    _fill(out, m, _cat(np.where(P.gender[pi[m]] == 1, "Ms. ", "Mr. "), r.sur_py_cap[P.sur[pi[m]]]))
    return out


def _render_gender(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    style = _pick(u, [0.6, 0.15, 0.07, 0.18])
    table = _sarr([x for pair in _GENDERS for x in pair])
    return table[style * 2 + g]


def _render_birth(P: _People, pi: np.ndarray, u: np.ndarray, u_swap: np.ndarray, probs: list[float]) -> np.ndarray:
    """Formats (probs order): 1990-03-07, 1990/3/7, 19900307, 1990年3月7日, empty, 03-07; 3 % swap day and month."""
    r = _ref()
    y, m, d = P.by[pi], P.bm[pi], P.bd[pi]
    swap = (u_swap < 0.03) & (d <= 12) & (d != m)
    m, d = np.where(swap, d, m), np.where(swap, m, d)
    fmt = _pick(u, probs)
    ys = r.year[y]
    out = _cat(ys, "-", r.num2[m], "-", r.num2[d])
    k = fmt == 1
    _fill(out, k, _cat(ys[k], "/", r.num1[m[k]], "/", r.num1[d[k]]))
    k = fmt == 2
    _fill(out, k, _cat(ys[k], r.num2[m[k]], r.num2[d[k]]))
    k = fmt == 3
    _fill(out, k, _cat(ys[k], "年", r.num1[m[k]], "月", r.num1[d[k]], "日"))
    _fill(out, fmt == 4, "")
    k = fmt == 5
    _fill(out, k, _cat(r.num2[m[k]], "-", r.num2[d[k]]))
    return out


_PHONE_FORMATS = [0.6, 0.1, 0.08, 0.05, 0.05, 0.06, 0.03, 0.03]


def _format_mobile(d: np.ndarray, u: np.ndarray, probs: list[float] = _PHONE_FORMATS) -> np.ndarray:
    """``13812345678`` in one of its spellings (plain, dashed, +86 spaced, 86-, (+86), +86, full-width, spaced)."""
    style = _pick(u, probs)
    out = d.copy()
    for k, fn in enumerate(
        (
            None,
            lambda x: _cat(np.strings.slice(x, 0, 3), "-", np.strings.slice(x, 3, 7), "-", np.strings.slice(x, 7, 11)),
            lambda x: _cat(
                "+86 ", np.strings.slice(x, 0, 3), " ", np.strings.slice(x, 3, 7), " ", np.strings.slice(x, 7, 11)
            ),
            lambda x: _cat("86-", x),
            lambda x: _cat("(+86)", x),
            lambda x: _cat("+86", x),
            lambda x: _translate(x, _FULLWIDTH),
            lambda x: _cat(np.strings.slice(x, 0, 3), " ", np.strings.slice(x, 3, 7), " ", np.strings.slice(x, 7, 11)),
        )
    ):
        m = style == k
        if fn is not None and m.any():
            out[m] = fn(d[m])
    return out


def _render_phone(
    P: _People,
    pi: np.ndarray,
    t: np.ndarray,
    u_kind: np.ndarray,
    u_fmt: np.ndarray,
    kind_p: list[float],
    fmt_p: list[float] = _PHONE_FORMATS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phone as shown on a record. Kinds: own mobile, household head's mobile, landline (people
    without one show their mobile), invalid, empty.

    Returns the rendered value, a mask of invalid numbers and the 11 mobile digits shown ('' when
    the record shows no valid mobile).
    """
    kind = _pick(u_kind, kind_p)
    own = P.mob_at_time(pi, t)
    head_mob = P.mob_at_time(P.head[pi], t)
    is_member = P.head[pi] != pi
    digits = np.where((kind == 1) & is_member, head_mob, own)
    out = _format_mobile(digits, u_fmt, fmt_p)
    land = P.landline[pi]
    m = (kind == 2) & _nonempty(land)
    if m.any():
        sub = _pick(u_fmt[m] * 13 % 1, [0.7, 0.15, 0.15])
        lv = land[m]
        area, _, num = np.strings.partition(lv, np.array("-", dtype=_S))
        out[m] = np.where(sub == 1, _cat("(", area, ")", num), np.where(sub == 2, _cat(area, num), lv))
    invalid = kind == 3
    if invalid.any():
        d = digits[invalid]
        sub = _pick(u_fmt[invalid] * 13 % 1, [0.4, 0.35, 0.25])
        short = np.strings.slice(d, 0, 10)
        wrong = _cat("12", np.strings.slice(d, 2, 11))
        long = _cat(d, np.strings.slice(d, 10, 11))
        out[invalid] = np.where(sub == 0, short, np.where(sub == 1, wrong, long))
    _fill(out, kind == 4, "")
    shown = np.where(m | invalid | (kind == 4), "", digits)
    return out, invalid, shown


_EMAIL_STYLES = [0.86, 0.04, 0.03, 0.03, 0.01, 0.03]  # clean, upper, capitalised, stray space, space @, typo


def _render_email(
    P: _People, pi: np.ndarray, u_present: np.ndarray, u_style: np.ndarray, present_p: float, family_p: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Email as shown on a record: own or the family mailbox. Returns (value, clean value, typo mask)."""
    r = _ref()
    head = P.head[pi]
    own = _nonempty(P.email_local[pi])
    use_family = P.mailbox[pi] & (~own | (u_style * 17 % 1 < family_p)) & _nonempty(P.email_local[head])
    src = np.where(use_family, head, pi)
    local = P.email_local[src]
    dom = P.email_dom[src]
    present = (u_present < present_p) & _nonempty(local)
    clean = np.where(present, _cat(local, "@", r.dom[dom]), "")
    style = _pick(u_style, _EMAIL_STYLES)
    out = clean.copy()
    m = present & (style == 1)
    _fill(out, m, np.strings.upper(clean[m]))
    m = present & (style == 2)
    _fill(out, m, np.strings.capitalize(clean[m]))
    m = present & (style == 3)
    _fill(out, m, np.where(u_present[m] < present_p / 2, _cat(" ", clean[m]), _cat(clean[m], "  ")))
    m = present & (style == 4)
    _fill(out, m, _cat(local[m], " @ ", r.dom[dom[m]]))
    typo = present & (style == 5)
    _fill(out, typo, _cat(local[typo], "@", r.dom_typo[dom[typo]]))
    return out, clean, typo


def _render_geo(
    P: _People, pi: np.ndarray, t: np.ndarray, u_p: np.ndarray, u_c: np.ndarray, u_d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = _ref()
    d = P.dist_at(pi, t)
    c = r.dist_city[d]
    p = r.dist_prov[d]
    ps = _pick(u_p, [0.55, 0.22, 0.07, 0.06, 0.10])
    prov = np.stack([r.prov_std[p], r.prov_short[p], r.prov_abbr[p], r.prov_en[p], np.full(len(p), "", dtype=_S)])
    province = prov[ps, np.arange(len(p))]
    cs = _pick(u_c, [0.6, 0.25, 0.05, 0.10])
    cities = np.stack([r.city_std[c], r.city_short[c], r.city_en[c], np.full(len(c), "", dtype=_S)])
    city = cities[cs, np.arange(len(c))]
    ds = _pick(u_d, [0.75, 0.1, 0.15])
    dists = np.stack([r.dist_std[d], r.dist_short[d], np.full(len(d), "", dtype=_S)])
    district = dists[ds, np.arange(len(d))]
    return province, city, district


def _render_address(P: _People, pi: np.ndarray, t: np.ndarray, u: np.ndarray) -> np.ndarray:
    r = _ref()
    a = P.addr_at(pi, t)
    d = P.dist_at(pi, t)
    style = _pick(u, [0.6, 0.18, 0.1, 0.05, 0.03, 0.04])
    out = a.copy()
    m = style == 1
    _fill(out, m, _cat(r.dist_std[d[m]], a[m]))
    m = style == 2
    _fill(out, m, _cat(r.city_std[r.dist_city[d[m]]], r.dist_std[d[m]], a[m]))
    m = style == 3
    _fill(out, m, np.strings.replace(a[m], "号", "号 "))
    m = style == 4
    _fill(out, m, _translate(a[m], _FULLWIDTH))
    _fill(out, style == 5, "")
    return out


#: development zones written instead of a district on shipping addresses
_DEV_ZONES = ["高新区", "工业园区", "经济技术开发区", "高新技术产业开发区"]


def _shipping_address(P: _People, pi: np.ndarray, t: np.ndarray, u: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """One free-text line starting with province/city: ``沪闵行区…``, ``广东深圳南山区…``."""
    r = _ref()
    d = P.dist_at(pi, t)
    c = r.dist_city[d]
    p = r.dist_prov[d]
    muni = r.prov_muni[p]
    n = len(pi)
    ps = _pick(u, [0.35, 0.35, 0.15, 0.15])
    prov = np.stack([r.prov_std[p], r.prov_short[p], r.prov_abbr[p], np.full(n, "", dtype=_S)])[ps, np.arange(n)]
    cs = _pick(u2 * 7 % 1, [0.55, 0.45])
    city = np.where(cs == 0, r.city_std[c], r.city_short[c])
    # municipalities: after the province name the city is usually omitted ("沪闵行区", "上海市闵行区"),
    # sometimes repeated ("上海上海市闵行区"); after a province abbreviation comes the short city ("粤深圳")
    city = np.where(muni & (ps < 3) & ((u2 < 0.75) | (ps == 2)), "", city)
    city = np.where(~muni & (ps == 2), r.city_short[c], city)
    dist = np.where(u2 * 11 % 1 < 0.9, r.dist_std[d], r.dist_short[d])
    sep = np.where(u * 7 % 1 < 0.25, " ", "")
    # what shops really receive: a development zone instead of the district (高新区, 工业园区), the
    # city left out after a province ("广东南山区"), the region in English or pinyin
    # ("Guangdong Shenzhen 南山区…", "Shanghai 闵行区…"); draws derived from the record's own
    v = u * 29 % 1
    zone = (v < 0.06) & ~muni
    dist = np.where(zone, _sarr(_DEV_ZONES)[(u2 * 37 % 1 * len(_DEV_ZONES)).astype(np.int64)], dist)
    no_city = (v >= 0.06) & (v < 0.10) & ~muni & (ps < 2)
    city = np.where(no_city, "", city)
    latin = (v >= 0.10) & (v < 0.18)
    en_city = np.where(muni, "", _cat(r.city_en[c], " "))
    en_prov = np.where((u2 * 13 % 1 < 0.5) | muni, _cat(r.prov_en[p], " "), "")
    prov = np.where(latin, en_prov, prov)
    city = np.where(latin, en_city, city)
    return _cat(prov, city, sep, dist, sep, P.addr_at(pi, t))


def _render_company(P: _People, pi: np.ndarray, t: np.ndarray, u: np.ndarray) -> np.ndarray:
    comp = P.comp_at_time(pi, t)
    has = comp >= 0
    c = np.maximum(comp, 0)
    style = _pick(u, [0.55, 0.15, 0.1, 0.05, 0.1, 0.05])
    variants = np.stack(
        [P.companies[k][c] for k in ("canonical", "llc", "paren", "fwparen", "short")] + [np.full(len(c), "", dtype=_S)]
    )
    out = variants[style, np.arange(len(c))]
    return np.where(has, out, "")


def _city_variant(c: np.ndarray, u: np.ndarray, probs: list[float]) -> np.ndarray:
    r = _ref()
    cities = np.stack([r.city_std[c], r.city_short[c], r.city_en[c], np.full(len(c), "", dtype=_S)])
    return cities[_pick(u, probs), np.arange(len(c))]


# ============================================================================ records
@dataclass
class _Records:
    """One source's records and their exported versions (a re-export is a later version)."""

    source: str
    person: np.ndarray  # per record
    created: np.ndarray
    batch: np.ndarray  # batch of the first export
    ids: np.ndarray
    noise: np.ndarray  # per record uniform draws, shared by all versions of the record
    id_key: np.ndarray | None = None  # sort key of ids when record order is not id order
    v_rec: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    v_batch: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    v_asof: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cols: dict[str, np.ndarray] = field(default_factory=dict)  # rendered, per version
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # per version helper arrays

    @property
    def v_person(self) -> np.ndarray:
        return self.person[self.v_rec]


def _make_records(
    rng: np.random.Generator,
    P: _People,
    clock: _Clock,
    source: str,
    share: float,
    dup: float,
    since: int,
    n_noise: int = 20,
) -> _Records:
    base = np.flatnonzero(rng.random(P.n) < share)
    extra = base[rng.random(len(base)) < dup]
    person = np.concatenate([base, extra])
    created, batch, _ = clock.draw(rng, np.full(len(person), since, dtype=np.int64), clock.first - since)
    order = np.lexsort((person, created))
    person, created, batch = person[order], created[order], batch[order]
    noise = rng.random((len(person), n_noise))
    return _Records(source=source, person=person, created=created, batch=batch, ids=_sarr([]), noise=noise)


def _add_versions(
    rng: np.random.Generator,
    P: _People,
    clock: _Clock,
    rec: _Records,
    asof0: np.ndarray,
    random_share: float,
    follow_changes: bool = True,
) -> None:
    """First export of every record plus re-exports in later batches."""
    R = len(rec.person)
    v_rec, v_batch, v_asof = [np.arange(R)], [rec.batch], [asof0]
    if clock.days > 1:
        w = P.window_change[rec.person]
        cand = rec.batch < clock.days - 1
        follow = cand & (w > asof0) & (w < _INF) & (rng.random(R) < 0.85) & follow_changes
        rnd = cand & ~follow & (rng.random(R) < random_share)
        idx_f = np.flatnonzero(follow)
        b_f = np.maximum(clock.batch_of(w[idx_f]), rec.batch[idx_f] + 1)
        idx_r = np.flatnonzero(rnd)
        span = clock.days - 1 - rec.batch[idx_r]
        b_r = rec.batch[idx_r] + 1 + (rng.random(len(idx_r)) * span).astype(np.int64)
        idx = np.concatenate([idx_f, idx_r])
        b2 = np.minimum(np.concatenate([b_f, b_r]), clock.days - 1)
        lower = np.concatenate([w[idx_f], clock.exports[b_r - 1]])
        t, b, ok = clock.draw(rng, lower, 0, batch=b2)
        ok &= b > rec.batch[idx]
        v_rec.append(idx[ok])
        v_batch.append(b[ok])
        v_asof.append(t[ok])
    rec.v_rec = np.concatenate(v_rec)
    rec.v_batch = np.concatenate(v_batch)
    rec.v_asof = np.concatenate(v_asof)
    order = np.lexsort((rec.v_rec, rec.v_batch))
    rec.v_rec, rec.v_batch, rec.v_asof = rec.v_rec[order], rec.v_batch[order], rec.v_asof[order]


def _crm(rng: np.random.Generator, P: _People, clock: _Clock) -> _Records:
    rec = _make_records(rng, P, clock, "crm", 0.60, 0.07, clock.hist_lo)
    R = len(rec.person)
    rec.ids = _cat("C", _istr(np.arange(1, R + 1), max(6, len(str(R)))))
    hi = clock.exports[rec.batch]
    u = rng.random(R)
    updated = np.where(u < 0.4, rec.created, rec.created + ((hi - rec.created) * rng.random(R) ** 2).astype(np.int64))
    _add_versions(rng, P, clock, rec, updated, 0.06)
    pi, t, U = rec.v_person, rec.v_asof, rec.noise[rec.v_rec]
    reexport = rec.v_batch > rec.batch[rec.v_rec]
    vu = rng.random(len(pi))
    c = rec.cols
    c["crm_id"] = rec.ids[rec.v_rec]
    c["name"] = _render_name(P, pi, U[:, 0], U[:, 1], _NAME_P["crm"])
    c["gender"] = _render_gender(P.gender[pi], U[:, 2])
    c["birth_date"] = _render_birth(P, pi, U[:, 3], U[:, 4], [0.45, 0.15, 0.1, 0.1, 0.2, 0.0])
    c["mobile"], rec.flags["phone_invalid"], rec.flags["mobile_digits"] = _render_phone(
        P, pi, t, U[:, 5], U[:, 6], [0.72, 0.025, 0.22, 0.015, 0.02]
    )
    c["email"], rec.flags["email_clean"], rec.flags["email_typo"] = _render_email(P, pi, U[:, 7], U[:, 8], 0.85)
    c["province"], c["city"], c["district"] = _render_geo(P, pi, t, U[:, 9], U[:, 10], U[:, 11])
    c["address"] = _render_address(P, pi, t, U[:, 12])
    c["company"] = _render_company(P, pi, t, U[:, 13])
    c["customer_type"] = np.where(_nonempty(c["company"]) & (U[:, 14] < 0.35), "企业", "个人").astype(_S)
    tier = _pick(U[:, 15], [0.45, 0.42, 0.13])
    tier = np.where(reexport & (vu < 0.3), np.minimum(tier + 1, 2), tier)
    c["tier"] = _ref().tiers[tier]
    consent = _pick(U[:, 16], _CONSENT_P)
    consent = np.where(reexport & (vu > 0.8), _pick(rng.random(len(pi)), _CONSENT_P), consent)
    c["consent_marketing"] = _ref().consent[consent]
    c["created_at"] = clock.local(rec.created[rec.v_rec])
    c["updated_at"] = clock.local(t)
    return rec


def _nicknames(P: _People, pi: np.ndarray, u: np.ndarray, u2: np.ndarray) -> np.ndarray:
    r = _ref()
    sp = r.sur_py[P.sur[pi]]
    gp = P.giv_py[pi]
    d2 = r.num2[(u2 * 100).astype(np.int64)]
    style = _pick(u, [0.25, 0.12, 0.08, 0.08, 0.1, 0.15, 0.1, 0.07, 0.05])
    out = _cat(sp, gp, d2)
    variants = {
        1: lambda m: _cat(sp[m], ".", gp[m]),
        2: lambda m: _cat(gp[m], "_", sp[m]),
        3: lambda m: _cat("xiao", sp[m], d2[m]),
        4: lambda m: _cat(sp[m], gp[m], r.year[P.by[pi[m]]]),
        5: lambda m: r.cn_nicks[(u2[m] * len(r.cn_nicks)).astype(np.int64)],
        6: lambda m: _cat(np.where(u2[m] < 0.5, "tb", "jd_"), _istr((u2[m] * 7919 % 1 * 10**8).astype(np.int64), 8)),
        7: lambda m: _cat(np.strings.lower(r.en[(u2[m] * len(r.en)).astype(np.int64)]), d2[m]),
        8: lambda m: _cat(
            np.strings.slice(sp[m], 0, 1),
            np.strings.slice(gp[m], 0, 1),
            "_",
            r.year[2000 + (u2[m] * 26).astype(np.int64)],
        ),
    }
    for k, fn in variants.items():
        m = style == k
        if m.any():
            out[m] = fn(m)
    latin = (P.en[pi] >= 0) & (style != 5) & (style != 6)
    _fill(out, latin, _cat(np.strings.lower(r.en[np.maximum(P.en[pi[latin]], 0)]), "_", sp[latin]))
    return out


def _ecommerce(rng: np.random.Generator, P: _People, clock: _Clock) -> _Records:
    since = clock.hist_lo + 365 * _DAY
    rec = _make_records(rng, P, clock, "ecommerce", 0.70, 0.08, since)
    R = len(rec.person)
    rec.ids = _cat("M", _istr(100_000_000 + np.arange(1, R + 1) * 7 + rng.integers(0, 7, R)))
    hi = clock.exports[rec.batch]
    asof0 = rec.created + ((hi - rec.created) * rng.random(R)).astype(np.int64)
    _add_versions(rng, P, clock, rec, asof0, 0.05)
    pi, t, U = rec.v_person, rec.v_asof, rec.noise[rec.v_rec]
    c = rec.cols
    c["member_id"] = rec.ids[rec.v_rec]
    c["nickname"] = _nicknames(P, pi, U[:, 0], U[:, 1])
    c["real_name"] = _render_name(P, pi, U[:, 2], U[:, 3], _NAME_P["ecommerce"])
    rec.flags["real_name_absent"] = U[:, 4] < 0.30
    rec.flags["real_name_null"] = (U[:, 4] >= 0.30) & (U[:, 4] < 0.33)
    c["phone"], rec.flags["phone_invalid"], rec.flags["mobile_digits"] = _render_phone(
        P, pi, t, U[:, 5], U[:, 6], [0.76, 0.2, 0.0, 0.015, 0.025], [0.75, 0.03, 0.05, 0.02, 0.02, 0.1, 0.02, 0.01]
    )
    c["email"], rec.flags["email_clean"], rec.flags["email_typo"] = _render_email(P, pi, U[:, 7], U[:, 8], 0.8)
    c["shipping_address"] = _shipping_address(P, pi, t, U[:, 9], U[:, 10])
    c["registered_at"] = clock.iso(rec.created[rec.v_rec])
    login = t + ((clock.exports[rec.v_batch] - t) * rng.random(len(pi))).astype(np.int64)
    rec.flags["last_login_ms"] = clock.epoch_ms(login, rng.integers(0, 1000, len(pi)))
    return rec


def _orders(rng: np.random.Generator, clock: _Clock, members: _Records) -> dict[str, np.ndarray]:
    counts = rng.poisson(1.5, len(members.person))
    owner = np.repeat(np.arange(len(members.person)), counts)
    n = len(owner)
    lower = np.maximum(
        members.created[owner], clock.exports[np.maximum(members.batch[owner] - 1, 0)] * (members.batch[owner] > 0)
    )
    ts, b, ok = clock.draw(rng, lower, clock.first - int(members.created.min()) if n else 0)
    ok &= b >= members.batch[owner]
    owner, ts, b = owner[ok], ts[ok], b[ok]
    order = np.lexsort((owner, ts))
    owner, ts, b = owner[order], ts[order], b[order]
    n = len(owner)
    cents = np.clip(np.round(rng.lognormal(5.0, 1.0, n) * 100), 100, 5_000_000).astype(np.int64)
    status = _pick(rng.random(n), [0.86, 0.06, 0.08])
    cents = np.where(status == 1, -cents, cents)
    r = _ref()
    amount = _cat(np.where(cents < 0, "-", ""), _istr(np.abs(cents) // 100), ".", r.num2[np.abs(cents) % 100])
    return {
        "order_id": _cat("SO", _istr(np.arange(1, n + 1), 10)),
        "member_id": members.ids[owner],
        "order_ts": clock.iso(ts),
        "amount_cny": amount,
        "status": _sarr(["paid", "refunded", "cancelled"])[status],
        "_batch": b,
    }


def _callcenter(rng: np.random.Generator, P: _People, clock: _Clock) -> _Records:
    since = max(clock.hist_lo, _sec(date(clock.dates[0].year - 6, 1, 1)))
    rec = _make_records(rng, P, clock, "callcenter", 0.30, 0.15, since)
    R = len(rec.person)
    rec.ids = _cat("TK", _istr(np.arange(1, R + 1), 8))
    _add_versions(rng, P, clock, rec, rec.created, 0.0, follow_changes=False)
    pi, t, U = rec.v_person, rec.v_asof, rec.noise[rec.v_rec]
    c = rec.cols
    c["ticket_id"] = rec.ids[rec.v_rec]
    c["caller_name"] = _render_name(P, pi, U[:, 0], U[:, 1], _NAME_P["callcenter"])
    c["caller_phone"], rec.flags["phone_invalid"], rec.flags["mobile_digits"] = _render_phone(
        P, pi, t, U[:, 2], U[:, 3], [0.62, 0.04, 0.3, 0.015, 0.025], [0.85, 0.03, 0.03, 0.02, 0.02, 0.03, 0.01, 0.01]
    )
    channel = _pick(U[:, 4], [0.7, 0.2, 0.1])
    c["callback_email"], rec.flags["email_clean"], rec.flags["email_typo"] = _render_email(
        P, pi, np.where(channel == 2, 0.0, U[:, 5]), U[:, 6], 0.25
    )
    c["city"] = _city_variant(_ref().dist_city[P.dist_at(pi, t)], U[:, 7], [0.45, 0.35, 0.05, 0.15])
    c["created_at"] = clock.local(t)
    c["channel"] = _sarr(["phone", "wechat", "email"])[channel]
    return rec


def _store_pos(rng: np.random.Generator, P: _People, clock: _Clock) -> _Records:
    rec = _make_records(rng, P, clock, "store_pos", 0.40, 0.07, clock.hist_lo)
    R = len(rec.person)
    rec.id_key = _unique_ints(rng, R, 10**9, 10**10)
    rec.ids = _cat("88", _istr(rec.id_key))
    _add_versions(rng, P, clock, rec, rec.created, 0.03)
    pi, t, U = rec.v_person, rec.v_asof, rec.noise[rec.v_rec]
    c = rec.cols
    c["card_no"] = rec.ids[rec.v_rec]
    c["name"] = _render_name(P, pi, U[:, 0], U[:, 1], _NAME_P["store_pos"])
    c["phone"], rec.flags["phone_invalid"], rec.flags["mobile_digits"] = _render_phone(
        P, pi, t, U[:, 2], U[:, 3], [0.65, 0.25, 0.08, 0.01, 0.01], [0.8, 0.06, 0.02, 0.02, 0.02, 0.04, 0.03, 0.01]
    )
    c["birthday"] = _render_birth(P, pi, U[:, 4], U[:, 5], [0.15, 0.08, 0.02, 0.0, 0.2, 0.55])
    r = _ref()
    home = r.dist_city[P.dist_at(pi, rec.created[rec.v_rec])]
    other = (U[:, 6] * len(r.city_p)).astype(np.int64)
    c["store_city"] = _city_variant(np.where(U[:, 7] < 0.1, other, home), U[:, 8], [0.5, 0.45, 0.0, 0.05])
    c["enrolled_at"] = clock.local(rec.created[rec.v_rec])
    return rec


#: share of households (2+ people) with a shop account without a real name: one member's,
#: with the head's mobile and the household's address (which member: only the truth knows)
HOUSEHOLD_SHOP_SHARE = 0.12
#: share of call-centre tickets after a mobile change on which the agent typed the old number
#: (the customer called from it, or gave it out of habit)
OLD_NUMBER_TYPED_SHARE = 0.35


def _household_shops(trap: np.random.Generator, P: _People, clock: _Clock) -> _Records:
    """Nameless shop accounts of households: no real name, a handle that is not a name, the
    head's mobile and the household's shipping address. The account is one member's (at random),
    so it shares its contacts with several named people of whom it is at most one."""
    r = _ref()
    heads, size = np.unique(P.head, return_counts=True)
    hh = heads[(size > 1) & (trap.random(len(heads)) < HOUSEHOLD_SHOP_SHARE)]
    by_head = np.argsort(P.head, kind="stable")  # the members of a household are contiguous
    starts = np.searchsorted(P.head[by_head], hh)
    person = by_head[starts + (trap.random(len(hh)) * size[np.isin(heads, hh)]).astype(np.int64)]
    R = len(person)
    since = clock.hist_lo + 365 * _DAY
    created, batch, _ = clock.draw(trap, np.full(R, since, dtype=np.int64), clock.first - since)
    order = np.lexsort((person, created))
    person, created, batch = person[order], created[order], batch[order]
    rec = _Records(
        source="ecommerce", person=person, created=created, batch=batch, ids=_sarr([]), noise=trap.random((R, 20))
    )
    rec.ids = _cat("M9", _istr(np.arange(1, R + 1), 8))
    rec.v_rec, rec.v_batch, rec.v_asof = np.arange(R), batch, created
    pi, t, U = person, created, rec.noise
    hd = P.head[pi]
    c = rec.cols
    c["member_id"] = rec.ids
    c["nickname"] = np.where(
        U[:, 0] < 0.5,
        r.cn_nicks[(U[:, 1] * len(r.cn_nicks)).astype(np.int64)],
        _cat(np.where(U[:, 1] < 0.5, "tb", "jd_"), _istr((U[:, 2] * 10**8).astype(np.int64), 8)),
    )
    c["real_name"] = np.full(R, "", dtype=_S)
    rec.flags["real_name_absent"] = U[:, 3] < 0.8
    rec.flags["real_name_null"] = ~rec.flags["real_name_absent"]
    digits = P.mob_at_time(hd, t)
    c["phone"] = _format_mobile(digits, U[:, 4])
    rec.flags["phone_invalid"] = np.zeros(R, dtype=bool)
    rec.flags["mobile_digits"] = digits
    c["email"] = np.full(R, "", dtype=_S)
    rec.flags["email_clean"] = c["email"].copy()
    rec.flags["email_typo"] = np.zeros(R, dtype=bool)
    c["shipping_address"] = _shipping_address(P, hd, t, U[:, 5], U[:, 6])
    c["registered_at"] = clock.iso(created)
    login = t + ((clock.exports[batch] - t) * U[:, 7]).astype(np.int64)
    rec.flags["last_login_ms"] = clock.epoch_ms(login, (U[:, 8] * 1000).astype(np.int64))
    return rec


def _concat_records(a: _Records, b: _Records) -> _Records:
    """The records of ``a`` then those of ``b`` (one source); versions keep their batches."""
    if len(b.person) == 0:
        return a
    R = len(a.person)
    out = _Records(
        source=a.source,
        person=np.concatenate([a.person, b.person]),
        created=np.concatenate([a.created, b.created]),
        batch=np.concatenate([a.batch, b.batch]),
        ids=np.concatenate([a.ids, b.ids]),
        noise=np.concatenate([a.noise[:, : b.noise.shape[1]], b.noise]),
        v_rec=np.concatenate([a.v_rec, b.v_rec + R]),
        v_batch=np.concatenate([a.v_batch, b.v_batch]),
        v_asof=np.concatenate([a.v_asof, b.v_asof]),
        cols={k: np.concatenate([v, b.cols[k]]) for k, v in a.cols.items()},
        flags={k: np.concatenate([v, b.flags[k]]) for k, v in a.flags.items()},
    )
    order = np.argsort(out.v_batch, kind="stable")
    out.v_rec, out.v_batch, out.v_asof = out.v_rec[order], out.v_batch[order], out.v_asof[order]
    out.cols = {k: v[order] for k, v in out.cols.items()}
    out.flags = {k: v[order] for k, v in out.flags.items()}
    return out


def _old_numbers_typed(trap: np.random.Generator, P: _People, calls: _Records) -> None:
    """On ``OLD_NUMBER_TYPED_SHARE`` of the tickets after a mobile change that show the new
    mobile, the agent typed the old one (in place)."""
    pi, t = calls.v_person, calls.v_asof
    shown = calls.flags["mobile_digits"]
    new = _istr(P.mob_new[pi])
    m = (P.mob_at[pi] < _INF) & (t >= P.mob_at[pi]) & (shown == new) & (trap.random(len(pi)) < OLD_NUMBER_TYPED_SHARE)
    if m.any():
        old = _istr(P.mob_old[pi[m]])
        calls.cols["caller_phone"][m] = _format_mobile(old, trap.random(int(m.sum())))
        shown[m] = old


# ============================================================================ event feeds
def _one_record_per_person(
    rng: np.random.Generator, P: _People, recs: list[_Records], persons: np.ndarray, before: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each person (with a cut-off time), one random record of theirs created before it.

    Returns (position in ``persons``, source index in ``recs``, source id, record creation time,
    record batch); people without such a record are left out.
    """
    pos_of = np.full(P.n, -1, dtype=np.int64)
    pos_of[persons] = np.arange(len(persons))
    rows = []
    for k, rec in enumerate(recs):
        pos = pos_of[rec.person]
        cutoff = np.where(pos >= 0, np.append(before, 0)[pos], 0)  # pos -1 picks the appended 0
        m = (pos >= 0) & (rec.created < cutoff)
        idx = np.flatnonzero(m)
        rows.append((pos[idx], np.full(len(idx), k), idx))
    pos = np.concatenate([x[0] for x in rows])
    src = np.concatenate([x[1] for x in rows])
    idx = np.concatenate([x[2] for x in rows])
    order = np.lexsort((rng.random(len(pos)), pos))
    pos, src, idx = pos[order], src[order], idx[order]
    keep = np.ones(len(pos), dtype=bool)
    keep[1:] = pos[1:] != pos[:-1]
    pos, src, idx = pos[keep], src[keep], idx[keep]
    ids = np.empty(len(pos), dtype=_S)
    created = np.empty(len(pos), dtype=np.int64)
    batch = np.empty(len(pos), dtype=np.int64)
    for k, rec in enumerate(recs):
        m = src == k
        ids[m] = rec.ids[idx[m]]
        created[m] = rec.created[idx[m]]
        batch[m] = rec.batch[idx[m]]
    return pos, src, ids, created, batch


def _visible_from(clock: _Clock, batch: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Earliest time a value exported in ``batch`` (as of ``t``) can be referred to."""
    return np.maximum(t, np.where(batch > 0, clock.exports[np.maximum(batch - 1, 0)], 0))


def _self_service(
    rng: np.random.Generator, P: _People, clock: _Clock, crm: _Records, ecom: _Records, store: _Records
) -> dict[str, np.ndarray]:
    """Portal changes on existing records: new mobiles and addresses (matching the truth), email
    corrections of typo'd addresses, consent changes. A move is one submission of several fields."""
    r = _ref()
    recs = [crm, ecom, store]
    systems = _sarr(["crm", "ecommerce", "store_pos"])
    span = 90 * _DAY
    parts: list[tuple[np.ndarray, ...]] = []

    def add(src: np.ndarray, ids: np.ndarray, fld: str, val: np.ndarray, t: np.ndarray, b: np.ndarray) -> None:
        parts.append((systems[src], ids, np.full(len(ids), fld, dtype=_S), val, t, b))

    recent = clock.first - 180 * _DAY
    # new mobile numbers
    who = np.flatnonzero((P.mob_at >= recent) & (P.mob_at < _INF) & (rng.random(P.n) < 0.7))
    pos, src, ids, created, batch = _one_record_per_person(rng, P, recs, who, P.mob_at[who])
    t, b, ok = clock.draw(rng, _visible_from(clock, batch, np.maximum(P.mob_at[who[pos]], created)), span)
    val = _format_mobile(_istr(P.mob_new[who[pos]]), rng.random(len(pos)), [0.7, 0.1, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0])
    add(src[ok], ids[ok], "mobile", val[ok], t[ok], b[ok])
    # moves: address + district, and city/province when they changed, submitted together
    who = np.flatnonzero((P.move_at >= clock.first - 365 * _DAY) & (P.move_at < _INF) & (rng.random(P.n) < 0.6))
    pos, src, ids, created, batch = _one_record_per_person(rng, P, recs, who, P.move_at[who])
    pw = who[pos]
    t, b, ok = clock.draw(rng, _visible_from(clock, batch, np.maximum(P.move_at[pw], created)), span)
    short = rng.random(len(pw)) < 0.3
    dn, do = P.dist_new[pw], P.dist_old[pw]
    cn, pn = r.dist_city[dn], r.dist_prov[dn]
    add(src[ok], ids[ok], "address", P.addr_pool[P.addr_new[pw]][ok], t[ok], b[ok])
    add(src[ok], ids[ok], "district", r.dist_std[dn][ok], t[ok], b[ok])
    m = ok & (cn != r.dist_city[do])
    add(src[m], ids[m], "city", np.where(short, r.city_short[cn], r.city_std[cn])[m], t[m], b[m])
    m = ok & (pn != r.dist_prov[do])
    add(src[m], ids[m], "province", np.where(short, r.prov_short[pn], r.prov_std[pn])[m], t[m], b[m])
    # email corrections of typo'd addresses
    for k, rec in enumerate(recs[:2]):
        typo = np.flatnonzero(rec.flags["email_typo"] & (rng.random(len(rec.v_rec)) < 0.3))
        t, b, ok = clock.draw(rng, _visible_from(clock, rec.v_batch[typo], rec.v_asof[typo]), span)
        typo = typo[ok]
        add(np.full(len(typo), k), rec.ids[rec.v_rec[typo]], "email", rec.flags["email_clean"][typo], t[ok], b[ok])
    # consent changes
    for k, rec in enumerate(recs):
        pick = np.flatnonzero(rng.random(len(rec.person)) < 0.02)
        t, b, ok = clock.draw(rng, _visible_from(clock, rec.batch[pick], rec.created[pick]), span)
        pick = pick[ok]
        val = r.consent[_pick(rng.random(len(pick)), _CONSENT_P[:-1])]
        add(np.full(len(pick), k), rec.ids[pick], "consent_marketing", val, t[ok], b[ok])

    system, source_id, fld, new_value, t, b = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(t, kind="stable")
    return {
        "event_id": _cat("SS", _istr(np.arange(1, len(order) + 1), 9)),
        "source_system": system[order],
        "source_id": source_id[order],
        "field": fld[order],
        "new_value": new_value[order],
        "submitted_at": clock.iso(t[order]),
        "_batch": b[order],
    }


def _contact_events(rng: np.random.Generator, P: _People, clock: _Clock, recs: list[_Records]) -> dict[str, np.ndarray]:
    """Outcomes of using contacts that appear on the records.

    Typo'd emails bounce, old and invalid numbers are unreachable, some current contacts are
    verified or opted out. An event never happens before the value was exported.
    """
    chan, val, evt, lower = [], [], [], []

    def add(channel: str, values: np.ndarray, event: str, lo: np.ndarray) -> None:
        chan.append(np.full(len(values), channel, dtype=_S))
        val.append(values)
        evt.append(np.full(len(values), event, dtype=_S))
        lower.append(lo)

    email_col = {"crm": "email", "ecommerce": "email", "callcenter": "callback_email"}
    phone_col = {"crm": "mobile", "ecommerce": "phone", "callcenter": "caller_phone", "store_pos": "phone"}
    plain_or_e164 = [0.8, 0, 0, 0, 0, 0.2, 0, 0]
    for rec in recs:
        n = len(rec.v_rec)
        pi = rec.v_person
        vis = _visible_from(clock, rec.v_batch, rec.v_asof)
        u = rng.random((n, 4))
        shown = rec.flags["mobile_digits"]
        has_mobile = _nonempty(shown)
        old = has_mobile & (P.mob_at[pi] < _INF) & (shown == _istr(P.mob_old[pi]))
        m = old & (u[:, 0] < 0.4)
        add(
            "phone",
            _format_mobile(shown[m], u[m, 1], plain_or_e164),
            "unreachable",
            np.maximum(vis[m], P.mob_at[pi[m]]),
        )
        m = rec.flags["phone_invalid"] & (u[:, 0] < 0.5)
        add("phone", rec.cols[phone_col[rec.source]][m], "unreachable", vis[m])
        m = has_mobile & ~old & (u[:, 2] < 0.015)
        add("phone", _format_mobile(shown[m], u[m, 1], plain_or_e164), "verified", vis[m])
        m = has_mobile & ~old & (u[:, 2] > 0.995)
        add("phone", shown[m], "opted_out", vis[m])
        if rec.source in email_col:
            typo = rec.flags["email_typo"]
            clean = rec.flags["email_clean"]
            m = typo & (u[:, 3] < 0.5)
            add("email", np.strings.strip(rec.cols[email_col[rec.source]][m]), "bounced", vis[m])
            has_email = _nonempty(clean) & ~typo
            m = has_email & (u[:, 3] > 0.997)
            add("email", clean[m], "bounced", vis[m])
            m = has_email & (u[:, 3] < 0.015)
            add("email", clean[m], "verified", vis[m])
            m = has_email & (u[:, 3] > 0.99) & (u[:, 3] <= 0.997)
            add("email", clean[m], "opted_out", vis[m])

    t, b, ok = clock.draw(rng, np.concatenate(lower), 90 * _DAY)
    cols = {"channel": np.concatenate(chan)[ok], "value": np.concatenate(val)[ok], "event": np.concatenate(evt)[ok]}
    t, b = t[ok], b[ok]
    order = np.argsort(t, kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cols["occurred_at"] = clock.local(t[order])
    cols["_batch"] = b[order]
    return cols


def _erasure(
    rng: np.random.Generator, P: _People, clock: _Clock, crm: _Records, ecom: _Records, store: _Records
) -> dict[str, np.ndarray]:
    """A few people ask to be erased, identified by mobile, email or one of their record ids."""
    by_kind = {"crm_id": crm, "member_id": ecom, "card_no": store}
    has = np.zeros(P.n, dtype=bool)
    for rec in by_kind.values():
        has[rec.person[rec.batch == 0]] = True
    candidates = np.flatnonzero(has)
    k = min(len(candidates), max(clock.days, round(P.n * 0.0005)))
    chosen = rng.choice(candidates, size=k, replace=False) if k else candidates
    first_record: dict[str, dict[int, str]] = {}
    for kind, rec in by_kind.items():
        idx = np.flatnonzero(np.isin(rec.person, chosen) & (rec.batch == 0))
        lookup: dict[int, str] = {}
        for i in idx[::-1]:  # keep the person's first record
            lookup[int(rec.person[i])] = str(rec.ids[i])
        first_record[kind] = lookup
    rows: list[tuple[str, str, int]] = []
    for j, p in enumerate(chosen.tolist()):
        options = [("mobile", str(P.mob_new[p]))]
        if P.email_local[p]:
            options.append(("email", f"{P.email_local[p]}@{_ref().dom[P.email_dom[p]]}"))
        options += [(kind, lookup[p]) for kind, lookup in first_record.items() if p in lookup]
        n_req = 2 if rng.random() < 0.3 else 1
        for o in rng.choice(len(options), size=min(n_req, len(options)), replace=False):
            rows.append((options[int(o)][0], options[int(o)][1], j % clock.days))
    n = len(rows)
    b = np.array([x[2] for x in rows], dtype=np.int64)
    t, b, _ = clock.draw(rng, np.full(n, clock.first - 30 * _DAY, dtype=np.int64), 30 * _DAY, batch=b)
    order = np.argsort(t, kind="stable")
    return {
        "request_id": _cat("ER", _istr(np.arange(1, n + 1), 6)),
        "identifier_type": _sarr([x[0] for x in rows])[order],
        "identifier_value": _sarr([x[1] for x in rows])[order],
        "requested_at": clock.local(t[order]),
        "_batch": b[order],
    }


# ============================================================================ writers
def _csv_bytes(cols: dict[str, np.ndarray], order: list[str], eol: str = "\n") -> bytes:
    table = pa.table({k: pa.array(cols[k], mask=~_nonempty(cols[k])) for k in order})
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed", eol=eol))
    return buf.getvalue()


def _write_csv(
    path: Path, cols: dict[str, np.ndarray], order: list[str], encoding: str = "utf-8", eol: str = "\n"
) -> None:
    data = _csv_bytes(cols, order, eol)
    if encoding == "gb18030":
        data = data.decode("utf-8").encode("gb18030")
    elif encoding == "utf-8-sig":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)


def _json_str(a: np.ndarray) -> np.ndarray:
    if np.any(np.strings.find(a, "\\") >= 0):
        a = np.strings.replace(a, "\\", "\\\\")
    if np.any(np.strings.find(a, '"') >= 0):
        a = np.strings.replace(a, '"', '\\"')
    return _cat('"', a, '"')


def _jsonl_bytes(fields: list[tuple[str, np.ndarray, np.ndarray | None]]) -> bytes:
    """JSON Lines from columns: (key, value as JSON text, mask of rows where the key is absent)."""
    line: np.ndarray | None = None
    for i, (key, val, absent) in enumerate(fields):
        piece = _cat(("{" if i == 0 else ",") + f'"{key}":', val)
        if absent is not None:
            piece = np.where(absent, "{" if i == 0 else "", piece)
        line = piece if line is None else np.strings.add(line, piece)
    if line is None or len(line) == 0:
        return b""
    line = np.strings.add(line, "}\n")
    # the data buffer of an Arrow string array is the concatenation of its values
    arr = pa.array(line, type=pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    return memoryview(arr.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


def _batch_rows(batch: np.ndarray, b: int) -> slice | np.ndarray:
    """Rows of batch ``b``: a slice (a view, no copy) when rows are ordered by batch."""
    if len(batch) < 2 or bool(np.all(batch[1:] >= batch[:-1])):
        lo, hi = np.searchsorted(batch, [b, b + 1])
        return slice(int(lo), int(hi))
    return np.flatnonzero(batch == b)


def _nrows(idx: slice | np.ndarray) -> int:
    return idx.stop - idx.start if isinstance(idx, slice) else len(idx)


def _sub(cols: dict[str, np.ndarray], idx: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


def _column_order(rng: np.random.Generator, columns: tuple[str, ...], shuffle: bool) -> list[str]:
    cols = list(columns)
    if shuffle:
        perm = rng.permutation(len(cols))
        if list(perm) == list(range(len(cols))):
            perm = np.roll(perm, 1)
        cols = [cols[i] for i in perm]
    return cols


# ============================================================================ public API
@dataclass
class GenerateSummary:
    """What :func:`generate_landing` wrote."""

    out: Path
    people: int
    files: dict[str, int]  # feed name -> files written
    records: dict[str, int]  # feed name -> records written
    truth_file: Path
    seconds: float


_TRUTH_README = """# Ground truth of this generated landing zone

Written by `mdm_devtools.generate` (seed {seed}, {entities} people, {days} export batches from {start}).
This folder is not a source folder; ingestion ignores it.

- `truth.csv`: `source,source_id,person_id` for every person-bearing record (crm_id, member_id,
  ticket_id, card_no), once per source id even when the record is re-exported in several batches.
  Compare it with `mdm export xref` to score matching: two records belong together when they
  have the same person_id.
- `people.csv`: the canonical attributes of each person as of the last export: name, gender
  (M/F), ISO birth date, current mobile in E.164, own email (empty when they have none or only
  use a family mailbox), current province/city/district (standard names), address, employer.
- `bad_files.csv` (only with dirty files): deliberately broken landing files and why.
"""


def generate_landing(
    out: Path,
    entities: int,
    seed: int = 42,
    days: int = 3,
    start: date = date(2026, 11, 18),
    dirty_files: bool = False,
) -> GenerateSummary:
    """Write a demo landing zone for ``entities`` people into ``out`` (see the module docstring).

    ``days`` export batches are dated ``start``, ``start + 1`` ... (exported at 03:00; the CRM's
    legacy GB18030 file is dated ``start - 1``). With ``dirty_files`` an empty, a truncated, a
    column-less and a broken-JSON file are added, dated the day after the last batch.

    Deterministic: the same arguments give byte-identical files. Existing files with the same
    names are overwritten; other files in ``out`` are left alone.
    """
    if entities < 1:
        raise ValueError(f"entities must be at least 1, got {entities}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    t0 = time.perf_counter()
    out = Path(out)
    rng = np.random.Generator(np.random.PCG64(seed))
    clock = _Clock(start, days)

    # the traps added later (shared name mailboxes, name twins, nameless household shop accounts,
    # old numbers typed by call-centre agents) draw from a second stream: the first one, and so
    # every record and pattern drawn from it, is what it was before they were added
    trap = np.random.Generator(np.random.PCG64([seed, 17]))
    P = _make_people(rng, entities, clock, trap)
    log.info("generated %d people in %.1fs", entities, time.perf_counter() - t0)
    crm = _crm(rng, P, clock)
    ecom = _ecommerce(rng, P, clock)
    orders = _orders(rng, clock, ecom)
    ecom = _concat_records(ecom, _household_shops(trap, P, clock))
    calls = _callcenter(rng, P, clock)
    _old_numbers_typed(trap, P, calls)
    store = _store_pos(rng, P, clock)
    log.info("rendered person records in %.1fs", time.perf_counter() - t0)
    changes = _self_service(rng, P, clock, crm, ecom, store)
    events = _contact_events(rng, P, clock, [crm, ecom, calls, store])
    erasure = _erasure(rng, P, clock, crm, ecom, store)

    files: dict[str, int] = {f.name: 0 for f in FEEDS}
    records: dict[str, int] = {f.name: 0 for f in FEEDS}
    feed_index = {f.name: i for i, f in enumerate(FEEDS)}

    def target(feed_name: str, file_name: str) -> Path:
        f = feed(feed_name)
        if not f.matches(file_name):
            raise AssertionError(f"{file_name} does not match the {feed_name} patterns {f.patterns}")
        folder = out / f.folder
        folder.mkdir(parents=True, exist_ok=True)
        files[feed_name] += 1
        return folder / file_name

    def write_jsonl(feed_name: str, file_name: str, data: bytes) -> None:
        # an empty JSON Lines file would look like a broken delivery: a batch without rows has no file
        if data:
            target(feed_name, file_name).write_bytes(data)
        else:
            log.info("no %s rows in this batch: %s not written", feed_name, file_name)

    def shuffled(feed_name: str, b: int) -> bool:
        return (b + feed_index[feed_name]) % 2 == 1

    legacy_cutoff = _sec(date(start.year - 5, 1, 1))
    for b, d in enumerate(clock.dates):
        iso_d, compact_d = d.isoformat(), d.strftime("%Y%m%d")

        # crm: the first batch is split into a GB18030 legacy file and a UTF-8-with-BOM file
        idx = _batch_rows(crm.v_batch, b)
        cols = _sub(crm.cols, idx)
        columns = feed("crm").columns
        if b == 0:
            # records untouched since before the cut-off come from the old system's export of
            # the previous day, in GB18030; the rest of the first batch is UTF-8 with a BOM
            legacy = (crm.created[crm.v_rec[idx]] < legacy_cutoff) & (crm.v_asof[idx] < clock.first - _DAY)
            if not legacy.any() or legacy.all():
                legacy = np.arange(_nrows(idx)) < _nrows(idx) // 2
            legacy_day = (d - timedelta(days=1)).isoformat()
            _write_csv(
                target("crm", f"crm_{legacy_day}.csv"),
                _sub(cols, np.flatnonzero(legacy)),
                _column_order(rng, columns, True),
                encoding="gb18030",
                eol="\r\n",
            )
            _write_csv(
                target("crm", f"crm_{iso_d}.csv"),
                _sub(cols, np.flatnonzero(~legacy)),
                _column_order(rng, columns, shuffled("crm", b)),
                encoding="utf-8-sig",
            )
        else:
            _write_csv(target("crm", f"crm_{iso_d}.csv"), cols, _column_order(rng, columns, shuffled("crm", b)))
        records["crm"] += _nrows(idx)

        # ecommerce members (JSON Lines) and orders (CSV, the last batch as Parquet)
        idx = _batch_rows(ecom.v_batch, b)
        c = _sub(ecom.cols, idx)
        fl = _sub(ecom.flags, idx)
        real_name = np.where(fl["real_name_null"], "null", _json_str(c["real_name"]))
        data = _jsonl_bytes(
            [
                ("member_id", _json_str(c["member_id"]), None),
                ("nickname", _json_str(c["nickname"]), None),
                ("real_name", real_name, fl["real_name_absent"]),
                ("phone", _json_str(c["phone"]), None),
                ("email", _json_str(c["email"]), None),
                ("shipping_address", _json_str(c["shipping_address"]), None),
                ("registered_at", _json_str(c["registered_at"]), None),
                ("last_login_at", _istr(fl["last_login_ms"]), None),
            ]
        )
        write_jsonl("ecommerce_members", f"members_{compact_d}T0300.jsonl", data)
        records["ecommerce_members"] += _nrows(idx)

        idx = _batch_rows(orders["_batch"], b)
        oc = _sub(orders, idx)
        columns = feed("ecommerce_orders").columns
        if b == days - 1:
            table = pa.table(
                {
                    "order_id": pa.array(oc["order_id"]),
                    "member_id": pa.array(oc["member_id"]),
                    "order_ts": pa.array(oc["order_ts"]),
                    "amount_cny": pac.cast(pa.array(oc["amount_cny"]), pa.decimal128(12, 2)),
                    "status": pa.array(oc["status"]),
                }
            )
            pq.write_table(table, target("ecommerce_orders", f"orders_{iso_d}.parquet"), compression="snappy")
        else:
            _write_csv(
                target("ecommerce_orders", f"orders_{iso_d}.csv"),
                oc,
                _column_order(rng, columns, shuffled("ecommerce_orders", b)),
            )
        records["ecommerce_orders"] += _nrows(idx)

        for rec, feed_name, stem in ((calls, "callcenter", "tickets"), (store, "store_pos", "cards")):
            idx = _batch_rows(rec.v_batch, b)
            _write_csv(
                target(feed_name, f"{stem}_{iso_d}.csv"),
                _sub(rec.cols, idx),
                _column_order(rng, feed(feed_name).columns, shuffled(feed_name, b)),
            )
            records[feed_name] += _nrows(idx)

        idx = _batch_rows(changes["_batch"], b)
        sc = _sub(changes, idx)
        data = _jsonl_bytes([(k, _json_str(sc[k]), None) for k in feed("self_service").columns])
        write_jsonl("self_service", f"changes_{compact_d}.jsonl", data)
        records["self_service"] += _nrows(idx)

        for cols_all, feed_name, stem in ((events, "contact_events", "events"), (erasure, "erasure", "erasure")):
            idx = _batch_rows(cols_all["_batch"], b)
            _write_csv(
                target(feed_name, f"{stem}_{iso_d}.csv"),
                _sub(cols_all, idx),
                _column_order(rng, feed(feed_name).columns, shuffled(feed_name, b)),
            )
            records[feed_name] += _nrows(idx)

    truth_file = _write_truth(out, P, [crm, ecom, calls, store], seed=seed, entities=entities, days=days, start=start)
    if dirty_files:
        _write_dirty_files(out, clock)

    seconds = time.perf_counter() - t0
    log.info(
        "wrote %d files, %d records for %d people to %s in %.1fs",
        sum(files.values()),
        sum(records.values()),
        entities,
        out,
        seconds,
    )
    return GenerateSummary(
        out=out, people=entities, files=files, records=records, truth_file=truth_file, seconds=seconds
    )


def _write_truth(out: Path, P: _People, recs: list[_Records], **meta: object) -> Path:
    r = _ref()
    tdir = out / _TRUTH_DIR
    tdir.mkdir(parents=True, exist_ok=True)
    width = max(7, len(str(P.n)))
    person_id = _cat("P", _istr(np.arange(1, P.n + 1), width))
    # one row per record (not per export version), by source then id
    recs = sorted(recs, key=lambda rec: list(PERSON_SOURCES).index(rec.source))
    orders = [np.argsort(rec.id_key, kind="stable") if rec.id_key is not None else slice(None) for rec in recs]
    src = np.concatenate([np.full(len(rec.ids), rec.source, dtype=_S) for rec in recs])
    ids = np.concatenate([rec.ids[o] for rec, o in zip(recs, orders, strict=True)])
    who = np.concatenate([rec.person[o] for rec, o in zip(recs, orders, strict=True)])
    truth_file = tdir / "truth.csv"
    truth = {"source": src, "source_id": ids, "person_id": person_id[who]}
    _write_csv(truth_file, truth, ["source", "source_id", "person_id"])

    everyone = np.arange(P.n)
    d = P.dist_new
    comp = np.maximum(P.comp_new, 0)
    people = {
        "person_id": person_id,
        "name": P.name,
        "gender": _sarr(["M", "F"])[P.gender],
        "birth_date": _cat(r.year[P.by], "-", r.num2[P.bm], "-", r.num2[P.bd]),
        "mobile": _cat("+86", _istr(P.mob_new)),
        "email": P.email(everyone),
        "province": r.prov_std[r.dist_prov[d]],
        "city": r.city_std[r.dist_city[d]],
        "district": r.dist_std[d],
        "address": P.addr_pool[P.addr_new],
        "company": np.where(P.comp_new >= 0, P.companies["canonical"][comp], ""),
    }
    _write_csv(tdir / "people.csv", people, list(people))
    (tdir / "README.md").write_text(_TRUTH_README.format(**meta), encoding="utf-8")
    return truth_file


def _write_dirty_files(out: Path, clock: _Clock) -> None:
    """Broken files that sort after the good ones, for quarantine demos; listed in bad_files.csv."""
    day = clock.dates[-1] + timedelta(days=1)
    iso_d, compact_d, last = day.isoformat(), day.strftime("%Y%m%d"), clock.dates[-1]
    bad: list[tuple[str, str]] = []

    empty = f"callcenter/tickets_{iso_d}.csv"
    (out / empty).write_bytes(b"")
    bad.append((empty, "empty file"))

    text = (out / f"crm/crm_{last.isoformat()}.csv").read_text(encoding="utf-8-sig" if clock.days == 1 else "utf-8")
    lines = text.splitlines(keepends=True)[:40]
    body = "".join(lines)
    cut = len(body) - len(lines[-1]) // 2 if len(lines) > 1 else len(body) // 2
    truncated = f"crm/crm_{iso_d}.csv"
    (out / truncated).write_text(body[:cut], encoding="utf-8")
    bad.append((truncated, "truncated: the last row is cut off in the middle"))

    store_lines = (out / f"store_pos/cards_{last.isoformat()}.csv").read_text(encoding="utf-8").splitlines()[:30]
    rows = list(csv.reader(store_lines))
    if rows:
        drop = rows[0].index("phone")
        rows = [[v for i, v in enumerate(row) if i != drop] for row in rows]
    missing = f"store_pos/cards_{iso_d}.csv"
    with open(out / missing, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    bad.append((missing, "missing required column phone"))

    members = out / f"ecommerce/members_{last.strftime('%Y%m%d')}T0300.jsonl"
    member_lines = members.read_text(encoding="utf-8").splitlines()[:20] if members.exists() else []
    member_lines = member_lines or ['{"member_id":"M000000000","nickname":"test","phone":"13800000000"}']
    broken_at = min(9, max(len(member_lines) - 1, 0))
    member_lines[broken_at] = member_lines[broken_at][: len(member_lines[broken_at]) // 2]
    broken = f"ecommerce/members_{compact_d}T0300.jsonl"
    (out / broken).write_text("\n".join(member_lines) + "\n", encoding="utf-8")
    bad.append((broken, f"broken JSON on line {broken_at + 1}"))

    with open(out / _TRUTH_DIR / "bad_files.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "reason"])
        w.writerows(bad)
