"""`python -m aidmesh_protection`: run the service.

python -m aidmesh_protection                  # serve (needs its data key, see README)
python -m aidmesh_protection new-key KEY_ID   # print a new data key, `KEY_ID:<base64>`
python -m aidmesh_protection reencrypt        # re-seal every value under the current key
"""

from __future__ import annotations

import asyncio
import sys

from aidmesh_runtime.auth import AuthConfigError
from aidmesh_runtime.service import run
from aidmesh_runtime.settings import SecretFileError

from .app import build_app
from .crypto import DataKeyError, new_data_key
from .settings import ProtectionSettings


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    try:
        if command == "serve" and len(argv) <= 1:
            settings = ProtectionSettings()
            run(build_app(settings), settings)
            return 0
        if command == "new-key" and len(argv) == 2:
            print(new_data_key(argv[1]))
            return 0
        if command == "reencrypt" and len(argv) == 1:
            from .rotation import reencrypt_database

            settings = ProtectionSettings()
            keyring = settings.keyring()
            result = asyncio.run(reencrypt_database(settings.database_dsn, keyring))
            print(f"re-sealed {result.moved} values under data key {keyring.current_id}")
            for case_ref, field_name in result.unreadable:
                print(f"unreadable, left as it is: {field_name} of {case_ref}", file=sys.stderr)
            return 1 if result.unreadable else 0
    except (DataKeyError, SecretFileError, AuthConfigError) as exc:
        print(f"protection: {exc}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
