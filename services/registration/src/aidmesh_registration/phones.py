"""Phone numbers as people type them, stored and compared in one form: E.164.

Google's libphonenumber (the `phonenumbers` port) knows every country's numbering plan, so
"050 123 45 67", "(050) 123-45-67", "380501234567" and "+380 50 123 45 67" are one number,
+380501234567, and a foreign number written with its country code is kept as such.
"""

from __future__ import annotations

import phonenumbers

#: Numbers written without a country code are Ukrainian.
DEFAULT_REGION = "UA"


def normalise_phone(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """The number in E.164 (`+380501234567`), or ValueError saying why (never the value)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"cannot be read as a phone number ({_why(exc)})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            "is no valid phone number: a Ukrainian number is +380 and nine digits"
            " (or 0 and nine digits), a foreign one needs its country code"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _why(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "no digits a phone number could have",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "unreadable")
