"""The benchmark's workload: one search request's top-100, in the languages shoppers really mix.

Queries come in Chinese, Spanish, Arabic, Russian, Japanese, German, French and
English; the catalog is mostly English with local-language listings mixed in. Each
passage is built by ``reranking.passages.format_passage`` (title, brand, description,
attributes, price), the exact text production scores, and lands around 100 XLM-R
tokens per pair. Deterministic: the same 100 pairs on every run and machine.
"""

from __future__ import annotations

import random
from typing import Any

from reranking.passages import format_passage

QUERIES: list[str] = [
    "无线降噪耳机 长续航",  # zh: wireless noise-cancelling headphones, long battery
    "zapatillas para correr mujer amortiguación",  # es
    "سماعات لاسلكية مع إلغاء الضوضاء",  # ar
    "кофемашина автоматическая с капучинатором",  # ru
    "ステンレス 水筒 保温 500ml",  # ja
    "Laufschuhe Herren wasserdicht",  # de
    "aspirateur robot laveur silencieux",  # fr
    "waterproof hiking backpack 30l",  # en
]

#: (english title, local title, brand, english description, local description, attributes)
_CATALOG: list[tuple[str, str, str, str, str, dict[str, str]]] = [
    (
        "Wireless Noise Cancelling Over-Ear Headphones",
        "无线降噪头戴式耳机",
        "Sony",
        "Industry-leading active noise cancellation with eight microphones, 30-hour battery life, "
        "quick charge and multipoint Bluetooth pairing for calls and music.",
        "八麦克风主动降噪，30小时续航，支持快充和多点蓝牙连接，通话清晰。",
        {"color": "Black", "connectivity": "Bluetooth 5.3"},
    ),
    (
        "Women's Road Running Shoes with Responsive Cushioning",
        "Zapatillas de running para mujer con amortiguación reactiva",
        "Nike",
        "Lightweight mesh upper, responsive foam midsole and a durable rubber outsole for daily "
        "training runs on roads and tracks.",
        "Parte superior de malla ligera, mediasuela de espuma reactiva y suela de goma duradera.",
        {"size": "38 EU", "drop": "10 mm"},
    ),
    (
        "Bluetooth Earbuds with Active Noise Cancellation",
        "سماعات أذن بلوتوث مع إلغاء الضوضاء النشط",
        "Anker",
        "Compact true wireless earbuds with adaptive noise cancelling, transparency mode and "
        "a charging case that adds 36 hours of playback.",
        "سماعات لاسلكية صغيرة مع خاصية إلغاء الضوضاء التكيفية وعلبة شحن توفر ٣٦ ساعة تشغيل.",
        {"water resistance": "IPX5"},
    ),
    (
        "Fully Automatic Espresso Machine with Milk Frother",
        "Автоматическая кофемашина с капучинатором",
        "De'Longhi",
        "Built-in conical burr grinder, one-touch cappuccino and latte macchiato, adjustable "
        "coffee strength and an easy-clean milk system.",
        "Встроенная кофемолка, приготовление капучино одним нажатием, регулировка крепости.",
        {"pressure": "15 bar", "water tank": "1.8 l"},
    ),
    (
        "Stainless Steel Vacuum Insulated Water Bottle 500 ml",
        "ステンレス 真空断熱 水筒 500ml",
        "Thermos",
        "Double-wall vacuum insulation keeps drinks hot for 12 hours and cold for 24 hours; "
        "leak-proof lid, dishwasher-safe parts.",
        "真空断熱構造で保温12時間・保冷24時間。パッキン一体型で洗いやすい。",
        {"capacity": "500 ml", "weight": "210 g"},
    ),
    (
        "Men's Waterproof Trail Running Shoes",
        "Wasserdichte Trailrunning-Schuhe für Herren",
        "Salomon",
        "Waterproof breathable membrane, aggressive lugs for grip on wet rock and a protective toe cap.",
        "Wasserdichte, atmungsaktive Membran, griffige Sohle für nasse Felsen und Zehenschutzkappe.",
        {"size": "44 EU", "membrane": "Gore-Tex"},
    ),
    (
        "Robot Vacuum and Mop Cleaner, Quiet Operation",
        "Aspirateur robot laveur silencieux",
        "Roborock",
        "LiDAR navigation, 5500 Pa suction, sonic mopping and a self-emptying dock; runs at 55 dB in quiet mode.",
        "Navigation LiDAR, aspiration 5500 Pa, serpillière vibrante et station d'autovidage.",
        {"runtime": "180 min", "noise": "55 dB"},
    ),
    (
        "Waterproof Hiking Backpack 30 L with Rain Cover",
        "Wanderrucksack 30 L wasserdicht",
        "Deuter",
        "Ventilated back system, hip belt pockets, hydration sleeve and an integrated rain cover "
        "for day hikes in any weather.",
        "Belüftetes Rückensystem, Hüftgurttaschen, Trinksystemfach und integrierte Regenhülle.",
        {"volume": "30 l", "weight": "1.2 kg"},
    ),
    (
        "Headphone Stand for Wireless Headphones",
        "耳机支架 适用于无线耳机",
        "Satechi",
        "Aluminium stand that holds wireless and noise cancelling headphones; non-slip base.",
        "铝合金耳机支架，适用于无线降噪耳机，底部防滑。",
        {"material": "Aluminium"},
    ),
    (
        "Replacement Laces for Running Shoes",
        "Cordones de repuesto para zapatillas de correr",
        "Lock Laces",
        "Elastic no-tie laces for running shoes, triathlon and everyday sneakers.",
        "Cordones elásticos sin nudo para zapatillas de correr y uso diario.",
        {"length": "120 cm"},
    ),
    (
        "Manual Coffee Grinder with Ceramic Burrs",
        "Ручная кофемолка с керамическими жерновами",
        "Hario",
        "Adjustable grind size from espresso to French press; ceramic burrs stay cool and sharp.",
        "Регулируемый помол от эспрессо до френч-пресса, керамические жернова.",
        {"capacity": "24 g"},
    ),
    (
        "Insulated Lunch Box with Leak-Proof Containers",
        "保温 弁当箱 ステンレス",
        "Zojirushi",
        "Keeps meals warm for hours; includes three microwave-safe containers and a carrying bag.",
        "保温ジャー付き弁当箱。電子レンジ対応の容器3個と専用バッグ付き。",
        {"capacity": "840 ml"},
    ),
]

_CURRENCIES = ["USD", "EUR", "CNY", "JPY", "RUB", "SAR", "GBP", "CHF"]
_SELLER_NOTES = [
    "Free delivery in 2-4 days, 30-day returns and a 2-year manufacturer warranty.",
    "Ships from our EU warehouse; official retailer, invoice included with every order.",
    "Bestseller in its category, rated 4.6 out of 5 by more than 2,000 verified buyers.",
]


def product_passages(count: int = 100, seed: int = 13) -> list[str]:
    """``count`` catalog passages: English listings with local-language ones mixed in."""
    rng = random.Random(seed)
    passages = []
    for i in range(count):
        en_title, local_title, brand, en_desc, local_desc, attributes = _CATALOG[i % len(_CATALOG)]
        local = rng.random() < 0.4
        product: dict[str, Any] = {
            "title": f"{local_title if local else en_title} {rng.choice(['', '2024', 'Pro', 'Plus', 'Lite'])}".strip(),
            "brand": brand,
            "description": f"{local_desc if local else en_desc} {rng.choice(_SELLER_NOTES)}"
            + (f" Model {rng.randint(100, 999)}." if i % 3 else ""),
            "attributes": dict(attributes, sku=f"SR-{rng.randint(10000, 99999)}"),
            "price": round(rng.uniform(5, 900), 2),
            "currency": rng.choice(_CURRENCIES),
        }
        passages.append(format_passage(product))
    return passages


def benchmark_pairs(count: int = 100, seed: int = 13) -> list[tuple[str, str]]:
    """``count`` (query, passage) pairs, queries rotating through eight languages."""
    passages = product_passages(count, seed)
    return [(QUERIES[i % len(QUERIES)], passage) for i, passage in enumerate(passages)]
