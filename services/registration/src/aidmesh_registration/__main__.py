"""`python -m aidmesh_registration`: run the service.

python -m aidmesh_registration                  # serve (needs its KEK, see README)
python -m aidmesh_registration new-kek KEK_ID   # print a new KEK, `KEK_ID:<base64>`
"""

from __future__ import annotations

import sys

from aidmesh_runtime.service import serve

from .app import build_app
from .crypto import KekError, new_kek
from .settings import RegistrationSettings


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    try:
        if command == "serve" and len(argv) <= 1:
            serve(build_app, RegistrationSettings)
            return 0
        if command == "new-kek" and len(argv) == 2:
            print(new_kek(argv[1]))
            return 0
    except KekError as exc:
        print(f"registration: {exc}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
