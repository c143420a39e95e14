from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings
from pydantic import SecretStr

from .crypto import DataKeyError, Keyring

MISSING_KEY = (
    "AIDMESH_PROTECTION_DATA_KEY is not set (nor AIDMESH_PROTECTION_DATA_KEY_FILE): the"
    " protection service keeps narratives and case notes encrypted and does not start"
    " without its data key. Set it from your secret store to '<key id>:<base64 of 32 random"
    " bytes>' (`python -m aidmesh_protection new-key <key id>` makes one). Locally,"
    " deploy/local/services.sh generates one into var/secrets/."
)


class ProtectionSettings(ServiceSettings):
    service_name: ClassVar[str] = "protection"
    default_http_port: ClassVar[int] = 8104

    #: The key that seals new narratives and notes, `<key id>:<base64 of 32 bytes>`
    #: (AIDMESH_PROTECTION_DATA_KEY), or a file holding it (AIDMESH_PROTECTION_DATA_KEY_FILE:
    #: a mounted secret, or the local key deploy/local/services.sh generates into
    #: var/secrets/), as every secret setting (aidmesh_runtime.settings). Never committed.
    data_key: SecretStr | None = None
    #: Keys rotated out, comma-separated, same format: they only open values sealed before
    #: the rotation, until `python -m aidmesh_protection reencrypt` has moved them.
    retired_data_keys: SecretStr | None = None
    #: The team named as `requested_by` on referrals (a team code, never a person).
    team_code: str = "IOM-PROTECTION"

    def keyring(self) -> Keyring:
        """The data keys, or DataKeyError saying what is missing (never what a key is)."""
        current = self.data_key.get_secret_value() if self.data_key else None
        if not current:
            raise DataKeyError(MISSING_KEY)
        retired = self.retired_data_keys.get_secret_value() if self.retired_data_keys else None
        return Keyring.from_config(current, retired)
