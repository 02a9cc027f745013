"""How shoppers write a price limit, per language: one data table, read by ``search.query_price``.

Adding a language is adding an entry here, not code. Each entry has

- ``currencies``: words and symbols → ISO 4217 code (matched longest first, case-insensitively; the
  shared ``SYMBOLS`` apply to every language, ``¥`` is CNY in Chinese and JPY elsewhere);
- ``patterns``: ``(kind, regex, needs_currency)`` where kind is ``max`` / ``min`` / ``between`` and the regex
  uses ``{a}`` (and ``{b}`` for a range) for "an amount, with an optional currency before or after it".
  ``needs_currency`` marks the loose forms ("16-50", "от 5") that are a price only when a currency is written,
  so "16-50 mm" or "ab 5 Jahren" never become a price filter.

Patterns are tried in order, so ranges come before the caps they contain ("desde 20 hasta 50" before "hasta 50").
Lead-in words that only make sense with the limit ("for", "por", "pour") are part of the pattern, so they
leave the query text together with it.
"""

from __future__ import annotations

from typing import Final, NamedTuple, TypedDict


class PricePattern(NamedTuple):
    kind: str  # "max" | "min" | "between"
    regex: str
    needs_currency: bool = False


class LanguagePatterns(TypedDict):
    currencies: dict[str, str]  # the language's currency words -> ISO code
    patterns: list[PricePattern]


#: Symbols and codes understood in every language.
SYMBOLS: Final[dict[str, str]] = {
    "us$": "USD",
    "usd": "USD",
    "$": "USD",
    "€": "EUR",
    "eur": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "₽": "RUB",
    "rub": "RUB",
    "¥": "JPY",
    "￥": "JPY",
    "jpy": "JPY",
    "cny": "CNY",
    "rmb": "CNY",
    "₩": "KRW",
    "krw": "KRW",
    "r$": "BRL",
    "brl": "BRL",
    "sar": "SAR",
    "aed": "AED",
    "chf": "CHF",
}

#: Words after a number that make it a size, count or age, never a price ("50 páginas", "16-50 mm", "ab 5 Jahren").
UNITS: Final[tuple[str, ...]] = (
    # Latin-script units and counts
    "mm",
    "cm",
    "m",
    "km",
    "in",
    "inch",
    "inches",
    "zoll",
    "pouces",
    "pulgadas",
    "polegadas",
    "pollici",
    "gb",
    "tb",
    "mb",
    "kb",
    "g",
    "kg",
    "mg",
    "lb",
    "lbs",
    "oz",
    "l",
    "ml",
    "w",
    "kw",
    "v",
    "mah",
    "wh",
    "h",
    "hr",
    "hrs",
    "min",
    "hz",
    "khz",
    "mhz",
    "ghz",
    "mp",
    "px",
    "x",
    "db",
    "bar",
    "psi",
    "rpm",
    "pages",
    "page",
    "páginas",
    "paginas",
    "seiten",
    "pagine",
    "pieces",
    "piece",
    "pcs",
    "piezas",
    "pièces",
    "pezzi",
    "peças",
    "stück",
    "teile",
    "pack",
    "years",
    "year",
    "yrs",
    "años",
    "anos",
    "jahre",
    "jahren",
    "ans",
    "anni",
    "months",
    "meses",
    "monate",
    "mois",
    "mesi",
    "people",
    "personas",
    "personen",
    "personnes",
    "persone",
    "pessoas",
    "players",
    "jugadores",
    "spieler",
    "joueurs",
    "giocatori",
    "jogadores",
    "cups",
    "tazas",
    "tassen",
    "tasses",
    "tazze",
    "xícaras",
    "%",
    # Cyrillic
    "мм",
    "см",
    "м",
    "кг",
    "г",
    "л",
    "мл",
    "вт",
    "гб",
    "тб",
    "страниц",
    "стр",
    "шт",
    "лет",
    "года",
    "год",
    "месяцев",
    "человек",
    # Arabic
    "صفحة",
    "صفحات",
    "قطعة",
    "قطع",
    "سنة",
    "سنوات",
    "غرام",
    "كغ",
    "مم",
    "سم",
    "واط",
    # CJK (written straight after the number)
    "毫米",
    "厘米",
    "公分",
    "米",
    "克",
    "千克",
    "公斤",
    "升",
    "毫升",
    "瓦",
    "页",
    "頁",
    "件",
    "个",
    "個",
    "岁",
    "歳",
    "才",
    "英寸",
    "寸",
    "ページ",
    "枚",
    "インチ",
    "人",
    "杯",
    "페이지",
    "개",
    "살",
    "인치",
    "명",
    "세",
)

LANGUAGES: Final[dict[str, LanguagePatterns]] = {
    "en": {
        "currencies": {
            "dollars": "USD",
            "dollar": "USD",
            "bucks": "USD",
            "euros": "EUR",
            "euro": "EUR",
            "pounds": "GBP",
            "pound": "GBP",
            "yen": "JPY",
            "yuan": "CNY",
            "rmb": "CNY",
            "rubles": "RUB",
            "roubles": "RUB",
            "riyals": "SAR",
            "riyal": "SAR",
            "dirhams": "AED",
            "dirham": "AED",
            "won": "KRW",
            "reais": "BRL",
        },
        "patterns": [
            PricePattern("between", r"(?:priced\s+)?between\s+{a}\s+and\s+{b}"),
            PricePattern("between", r"(?:from\s+)?{a}\s*(?:-|–|to)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:for\s+|priced\s+|costing\s+)?(?:under|below|less\s+than|cheaper\s+than|up\s+to|at\s+most|"
                r"no\s+more\s+than|not\s+over|max(?:imum)?|within|budget(?:\s+of)?)\s+{a}",
            ),
            PricePattern("max", r"{a}\s+(?:or\s+(?:less|under|below|cheaper)|max(?:imum)?)"),
            PricePattern("min", r"(?:for\s+|priced\s+)?(?:over|above|more\s+than|at\s+least|starting\s+at)\s+{a}"),
            PricePattern("min", r"from\s+{a}", True),
            PricePattern("min", r"{a}\s*(?:or\s+more|and\s+up|and\s+above|\+)"),
        ],
    },
    "es": {
        "currencies": {
            "euros": "EUR",
            "euro": "EUR",
            "dólares": "USD",
            "dolares": "USD",
            "dólar": "USD",
            "dolar": "USD",
            "libras": "GBP",
            "yenes": "JPY",
            "yuanes": "CNY",
            "rublos": "RUB",
            "reales": "BRL",
            "pesos": "MXN",
        },
        "patterns": [
            PricePattern("between", r"(?:por\s+)?entre\s+{a}\s+y\s+{b}"),
            PricePattern("between", r"(?:por\s+)?desde\s+{a}\s+hasta\s+{b}"),
            PricePattern("between", r"(?:de\s+)?{a}\s*(?:-|–|a)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:por\s+|a\s+)?(?:menos\s+de|por\s+debajo\s+de|hasta|como\s+máximo|máximo|no\s+más\s+de|"
                r"inferior(?:es)?\s+a|más\s+barat[oa]s?\s+que)\s+{a}",
            ),
            PricePattern(
                "min",
                r"(?:por\s+)?(?:más\s+de|por\s+encima\s+de|a\s+partir\s+de|como\s+mínimo|superior(?:es)?\s+a)\s+{a}",
            ),
            PricePattern("min", r"desde\s+{a}", True),
        ],
    },
    "pt": {
        "currencies": {
            "reais": "BRL",
            "real": "BRL",
            "euros": "EUR",
            "euro": "EUR",
            "dólares": "USD",
            "dolares": "USD",
            "dólar": "USD",
            "libras": "GBP",
            "ienes": "JPY",
        },
        "patterns": [
            PricePattern("between", r"(?:por\s+)?entre\s+{a}\s+e\s+{b}"),
            PricePattern("between", r"(?:por\s+)?de\s+{a}\s+(?:a|até)\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–)\s*{b}", True),
            PricePattern(
                "max", r"(?:por\s+)?(?:menos\s+de|abaixo\s+de|até|no\s+máximo|máximo|mais\s+barat[oa]s?\s+que)\s+{a}"
            ),
            PricePattern("min", r"(?:por\s+)?(?:mais\s+de|acima\s+de|a\s+partir\s+de|pelo\s+menos|no\s+mínimo)\s+{a}"),
        ],
    },
    "fr": {
        "currencies": {
            "euros": "EUR",
            "euro": "EUR",
            "dollars": "USD",
            "dollar": "USD",
            "livres": "GBP",
            "yens": "JPY",
            "yen": "JPY",
            "francs": "CHF",
            "roubles": "RUB",
        },
        "patterns": [
            PricePattern("between", r"(?:pour\s+)?entre\s+{a}\s+et\s+{b}"),
            PricePattern("between", r"(?:pour\s+)?de\s+{a}\s+à\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:pour\s+|à\s+)?(?:moins\s+de|en\s+dessous\s+de|au-dessous\s+de|jusqu['’]à|maximum|max|"
                r"pas\s+plus\s+de|inférieur\s+à|moins\s+cher\s+que)\s+{a}",
            ),
            PricePattern(
                "min", r"(?:pour\s+)?(?:plus\s+de|au-dessus\s+de|à\s+partir\s+de|au\s+moins|minimum|dès)\s+{a}"
            ),
        ],
    },
    "de": {
        "currencies": {
            "euro": "EUR",
            "dollar": "USD",
            "pfund": "GBP",
            "franken": "CHF",
            "yen": "JPY",
            "rubel": "RUB",
        },
        "patterns": [
            PricePattern("between", r"(?:für\s+)?zwischen\s+{a}\s+und\s+{b}"),
            PricePattern("between", r"(?:für\s+)?von\s+{a}\s+bis\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–|bis)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:für\s+)?(?:unter|bis(?:\s+zu)?|höchstens|maximal|max\.?|weniger\s+als|billiger\s+als|"
                r"günstiger\s+als|nicht\s+mehr\s+als)\s+{a}",
            ),
            PricePattern("max", r"{a}\s+(?:oder\s+weniger|maximal)"),
            PricePattern("min", r"(?:für\s+)?(?:über|mindestens|mehr\s+als|teurer\s+als)\s+{a}"),
            PricePattern("min", r"ab\s+{a}", True),
        ],
    },
    "it": {
        "currencies": {"euro": "EUR", "dollari": "USD", "dollaro": "USD", "sterline": "GBP", "yen": "JPY"},
        "patterns": [
            PricePattern("between", r"(?:per\s+)?(?:tra|fra)\s+{a}\s+e\s+{b}"),
            PricePattern("between", r"(?:per\s+)?da\s+{a}\s+a\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:per\s+|a\s+)?(?:meno\s+di|sotto\s+(?:i\s+)?|fino\s+a|al\s+massimo|massimo|non\s+più\s+di|"
                r"inferiore\s+a)\s*{a}",
            ),
            PricePattern("min", r"(?:per\s+)?(?:più\s+di|sopra\s+(?:i\s+)?|almeno|a\s+partire\s+da)\s*{a}"),
        ],
    },
    "ru": {
        "currencies": {
            "рублей": "RUB",
            "рубля": "RUB",
            "рубль": "RUB",
            "руб.": "RUB",
            "руб": "RUB",
            "р.": "RUB",
            "долларов": "USD",
            "доллара": "USD",
            "доллар": "USD",
            "евро": "EUR",
            "юаней": "CNY",
            "иен": "JPY",
        },
        "patterns": [
            PricePattern("between", r"(?:за\s+)?от\s+{a}\s+до\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:за\s+)?(?:дешевле|до|не\s+дороже|менее|меньше|ниже|максимум|не\s+более)\s+{a}",
            ),
            PricePattern("min", r"(?:за\s+)?(?:дороже|более|больше|свыше|выше|минимум|не\s+менее)\s+{a}"),
            PricePattern("min", r"от\s+{a}", True),
        ],
    },
    "ar": {
        "currencies": {
            "ريالات": "SAR",
            "ريال": "SAR",
            "ر.س": "SAR",
            "دولارات": "USD",
            "دولار": "USD",
            "يورو": "EUR",
            "دراهم": "AED",
            "درهم": "AED",
            "جنيه": "GBP",
            "ين": "JPY",
            "روبل": "RUB",
        },
        "patterns": [
            PricePattern("between", r"(?:ب\s*)?بين\s+{a}\s+و\s*{b}"),
            PricePattern("between", r"من\s+{a}\s+(?:إلى|الى|حتى)\s+{b}"),
            PricePattern("between", r"{a}\s*(?:-|–)\s*{b}", True),
            PricePattern(
                "max",
                r"(?:ب\s*)?(?:أقل\s+من|اقل\s+من|أرخص\s+من|ارخص\s+من|تحت|حتى|بحد\s+أقصى|بأقل\s+من|"
                r"لا\s+يزيد\s+عن|دون)\s+{a}",
            ),
            PricePattern("min", r"(?:ب\s*)?(?:أكثر\s+من|اكثر\s+من|فوق|أعلى\s+من|على\s+الأقل|أغلى\s+من)\s+{a}"),
            PricePattern("min", r"من\s+{a}", True),
        ],
    },
    "zh": {
        "currencies": {
            "人民币": "CNY",
            "元": "CNY",
            "块钱": "CNY",
            "块": "CNY",
            "日元": "JPY",
            "美元": "USD",
            "美金": "USD",
            "欧元": "EUR",
            "英镑": "GBP",
            "卢布": "RUB",
            "韩元": "KRW",
            "¥": "CNY",
            "￥": "CNY",
        },
        "patterns": [
            PricePattern("between", r"(?:价格)?(?:在\s*)?{a}\s*(?:到|至|-|–|~|～)\s*{b}\s*(?:之间|以内)"),
            PricePattern("between", r"(?:价格)?(?:在\s*)?{a}\s*(?:到|至|-|–|~|～)\s*{b}", True),
            PricePattern("max", r"(?:价格)?{a}\s*(?:以下|以内|之内|内)的?"),
            PricePattern("max", r"(?:价格)?(?:低于|不超过|不到|少于|最多|最高|预算)\s*{a}"),
            PricePattern("min", r"(?:价格)?{a}\s*(?:以上|起)的?"),
            PricePattern("min", r"(?:价格)?(?:高于|超过|多于|至少|最低)\s*{a}"),
        ],
    },
    "ja": {
        "currencies": {"円": "JPY", "えん": "JPY", "ドル": "USD", "ユーロ": "EUR", "ポンド": "GBP", "元": "CNY"},
        "patterns": [
            PricePattern("between", r"{a}\s*(?:から|[-–~〜～])\s*{b}\s*(?:まで|の間)", False),
            PricePattern("between", r"{a}\s*(?:から|[-–~〜～])\s*{b}", True),
            PricePattern("max", r"{a}\s*(?:以下|以内|まで|未満)の?"),
            PricePattern("max", r"(?:最大|予算|上限)\s*{a}"),
            PricePattern("min", r"{a}\s*(?:以上|から|超)の?"),
        ],
    },
    "ko": {
        "currencies": {"원": "KRW", "달러": "USD", "유로": "EUR", "엔": "JPY", "위안": "CNY"},
        "patterns": [
            PricePattern("between", r"{a}\s*(?:에서|[-–~～])\s*{b}\s*(?:사이|까지)", False),
            PricePattern("between", r"{a}\s*(?:[-–~～])\s*{b}", True),
            PricePattern("max", r"{a}\s*(?:이하|미만|까지|아래|이내)(?:의|인)?"),
            PricePattern("max", r"(?:최대|예산)\s*{a}"),
            PricePattern("min", r"{a}\s*(?:이상|초과|부터)"),
        ],
    },
}

#: Multipliers written after a number (CJK myriads, "1k").
MULTIPLIERS: Final[dict[str, int]] = {"万": 10_000, "萬": 10_000, "만": 10_000, "千": 1_000, "천": 1_000, "k": 1_000}
