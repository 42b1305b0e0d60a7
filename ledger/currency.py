"""ISO 4217 currencies and ``Money``: an integer of minor units tagged with its currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.errors import InvalidAmount, UnknownCurrency

# Minor-unit exponent of the ISO 4217 currencies a government unit is likely to hold.
ISO_4217_SCALE: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KES": 2, "KRW": 0, "KWD": 3, "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2,
    "NZD": 2, "OMR": 3, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2,
    "UGX": 0, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}  # fmt: skip


def currency_scale(code: str) -> int:
    """The number of minor-unit digits of ``code`` (``UnknownCurrency`` if not ISO 4217 here)."""
    try:
        return ISO_4217_SCALE[code]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {code!r}", field="currency") from None


def check_minor(value: object, field: str = "amount", *, allow_zero: bool = False) -> int:
    """``value`` if it is an ``int`` of minor units above zero (or zero when allowed)."""
    if type(value) is not int:
        raise InvalidAmount(f"{field} must be an integer of minor units", field=field)
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidAmount(f"{field} must be {'≥' if allow_zero else '>'} 0", field=field)
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents for EUR, yen for JPY) of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise InvalidAmount("amount must be an integer of minor units", field="amount")
        currency_scale(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """``Money.parse("12.34", "EUR")`` → 1234 cents; refuses digits beyond the scale."""
        scale = currency_scale(currency)
        value = Decimal(text) * (10**scale)
        if value != value.to_integral_value():
            raise InvalidAmount(f"{text} has more than {scale} decimals", field="amount")
        return cls(int(value), currency)

    def format(self) -> str:
        """The amount as a decimal string in major units, e.g. ``"12.34"``."""
        return format_minor(self.amount, self.currency)


def format_minor(amount: int, currency: str) -> str:
    """``amount`` minor units of ``currency`` as a decimal string in major units."""
    scale = currency_scale(currency)
    if scale == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**scale)
    return f"{sign}{whole}.{frac:0{scale}d}"
