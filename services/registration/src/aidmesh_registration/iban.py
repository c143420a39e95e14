"""Ukrainian bank account numbers (IBAN), as people type them, stored in one form.

A Ukrainian IBAN is `UA`, two check digits, the bank's six-digit code (MFO) and a
nineteen-character account number: 29 characters, written in groups of four on cards and
statements ("UA21 3223 1300 0002 6007 2335 6600 1"). The check digits (ISO 13616, mod 97)
catch any one mistyped character and most swaps, so a typing error is refused at the
counter, not discovered when the provider's payment fails.

Pure: no I/O. Messages say what is wrong, never the value (it is personal data).
"""

from __future__ import annotations

import re

#: UA, the check digits, the bank's code (MFO) and the account number (letters allowed).
_UKRAINIAN = re.compile(r"^UA\d{2}\d{6}[0-9A-Z]{19}$")
LENGTH = 29


def normalise_iban(raw: str) -> str:
    """The IBAN without spaces, upper-case (`UA213223130000026007233566001`), or ValueError
    saying why (never the value)."""
    iban = re.sub(r"[\s-]", "", raw).upper()
    if not iban.startswith("UA"):
        raise ValueError("is not a Ukrainian IBAN: it starts with UA")
    if len(iban) != LENGTH:
        raise ValueError(f"a Ukrainian IBAN is UA and 27 more characters ({LENGTH} in all)")
    if not _UKRAINIAN.match(iban):
        raise ValueError(
            "a Ukrainian IBAN is UA, two check digits, the bank's six-digit code and a"
            " 19-character account number (digits or Latin letters)"
        )
    if not checksum_holds(iban):
        raise ValueError("the IBAN's check digits do not match (ISO 13616): a character is wrong")
    return iban


def checksum_holds(iban: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, letters as 10-35, the
    number is 1 modulo 97."""
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def with_check_digits(country: str, bban: str) -> str:
    """The IBAN of an account (`bban`: the bank's code and the account number): the check
    digits computed. For tests and synthetic data."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"
