"""Cliniko's invoice arithmetic in Decimal: ex-tax unit prices, discounts on the tax-inclusive amount."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MILLI = Decimal("0.001")
PERCENT_DP = Decimal("0.0001")
HUNDRED = Decimal(100)


def dec(value) -> Decimal:
    """Any number, decimal string or None as a Decimal (None → 0)."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def dec_str(value) -> str:
    """A decimal string as Cliniko prints money: no trailing zeros but at least one decimal ("90.0")."""
    d = dec(value)
    text = format(d.normalize(), "f")
    if text in ("-0", "-0.0"):
        text = "0"
    return text if "." in text else text + ".0"


def number(value) -> float:
    """A JSON number for a numeric (non-string) field such as tax_rate or total_including_tax."""
    return float(dec(value))


def quantity_json(value) -> int | float:
    """An item quantity as JSON: whole numbers as integers, decimal quantities as numbers."""
    d = dec(value)
    return int(d) if d == d.to_integral_value() else float(d)


def price_line(unit_price, quantity, tax_rate, discount=None, monetary: bool = False) -> dict:
    """Compute an invoice item's derived fields the way Cliniko documents them.

    unit_price is ex-tax; a discount (percentage, or a monetary amount) is taken off the
    tax-inclusive line amount: unit 100.0, tax 10, monetary 20.0 → discount_percentage 18.1818,
    net_price 81.818, total_including_tax 90.0.
    """
    unit, qty, rate = dec(unit_price), dec(quantity), dec(tax_rate)
    gross = unit * qty * (1 + rate / HUNDRED)
    if monetary:
        discounted = dec(discount)
        pct = (discounted / gross * HUNDRED) if gross else Decimal(0)
    else:
        pct = dec(discount)
        discounted = (gross * pct / HUNDRED).quantize(CENT, ROUND_HALF_UP)
    total = (gross - discounted).quantize(CENT, ROUND_HALF_UP)
    net_price = (unit * (1 - pct / HUNDRED)).quantize(MILLI, ROUND_HALF_UP)
    tax = (total - total / (1 + rate / HUNDRED)).quantize(CENT, ROUND_HALF_UP)
    return {
        "unit_price": dec_str(unit),
        "quantity": quantity_json(qty),
        "discount_percentage": number(pct.quantize(PERCENT_DP, ROUND_HALF_UP)),
        "discounted_amount": dec_str(discounted),
        "is_monetary_discount": bool(monetary),
        "net_price": dec_str(net_price),
        "tax_rate": number(rate),
        "tax_amount": number(rate),
        "total_including_tax": number(total),
        "_line_tax": dec_str(tax),
    }


def reprice_item(item: dict) -> dict:
    """Recompute an item's derived fields from its own unit price, quantity, tax rate and discount."""
    monetary = bool(item.get("is_monetary_discount"))
    discount = item.get("discounted_amount") if monetary else item.get("discount_percentage")
    item.update(price_line(item.get("unit_price"), item.get("quantity"), item.get("tax_rate"), discount, monetary))
    return item


def invoice_totals(items: list[dict]) -> dict:
    """An invoice's amounts from its live items: total = Σ total_including_tax, net = total − tax."""
    total = sum((dec(i.get("total_including_tax")) for i in items), Decimal(0)).quantize(CENT)
    tax = sum(
        (dec(i.get("_line_tax")) if i.get("_line_tax") is not None else _item_tax(i) for i in items),
        Decimal(0),
    ).quantize(CENT)
    discount = sum((dec(i.get("discounted_amount")) for i in items), Decimal(0)).quantize(CENT)
    return {
        "total_amount": dec_str(total),
        "tax_amount": dec_str(tax),
        "net_amount": dec_str(total - tax),
        "discounted_amount": dec_str(discount),
    }


def _item_tax(item: dict) -> Decimal:
    total, rate = dec(item.get("total_including_tax")), dec(item.get("tax_rate"))
    return (total - total / (1 + rate / HUNDRED)).quantize(CENT, ROUND_HALF_UP)
