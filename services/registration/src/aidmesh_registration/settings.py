from __future__ import annotations

from typing import ClassVar

from aidmesh_runtime.settings import ServiceSettings
from pydantic import SecretStr

from .crypto import KekError, Vault

MISSING_KEK = (
    "no key-encryption key: set AIDMESH_REGISTRATION_KEK_FILE (a file holding"
    " '<kek id>:<base64 of 32 random bytes>', or only the base64) or AIDMESH_REGISTRATION_KEK."
    " Registration keeps personal data encrypted under it and does not start without it."
    " `python -m aidmesh_registration new-kek KEK_ID` makes one; locally,"
    " deploy/local/services.sh generates one into var/secrets/. Never commit it."
)


class RegistrationSettings(ServiceSettings):
    service_name: ClassVar[str] = "registration"
    default_http_port: ClassVar[int] = 8101

    #: Team code recorded as `assessed_by` when an intake does not name one.
    default_assessor: str = "IOM-REG"
    #: The key-encryption key (KEK) that wraps every household's data key, as
    #: `<kek id>:<base64 of 32 bytes>` or only the base64 (its id is then `kek_id`):
    #: AIDMESH_REGISTRATION_KEK, or a file holding it, AIDMESH_REGISTRATION_KEK_FILE (a
    #: mounted secret, or the local one deploy/local/services.sh generates), as every
    #: secret setting (aidmesh_runtime.settings). Never committed.
    kek: SecretStr | None = None
    #: The id of a KEK given as bare base64.
    kek_id: str = "kek1"
    #: The key shared with other agencies to compare lists of assisted people (issue 24,
    #: interagency.py): base64 of at least 32 random bytes, as the agencies agreed on it.
    #: AIDMESH_REGISTRATION_INTERAGENCY_KEY or ..._FILE, a secret like the KEK. Unset:
    #: registration refuses agencies' lists (and keeps no inter-agency hash); set later,
    #: the start-up step hashes the documents already stored.
    interagency_key: SecretStr | None = None

    def vault(self) -> Vault:
        """The KEK (and the inter-agency key, if set), or KekError saying what is missing
        (InteragencyKeyError what is malformed; never what a key is)."""
        text = self.kek.get_secret_value() if self.kek else None
        if not text:
            raise KekError(MISSING_KEK)
        shared = self.interagency_key.get_secret_value() if self.interagency_key else None
        return Vault.from_config(text, default_id=self.kek_id, interagency_key=shared or None)
