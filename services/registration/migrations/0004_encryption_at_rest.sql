-- 0004: personal data encrypted at rest with a key per household; erasure (ADR 0010).
--
-- Each household gets a data key (DEK), stored only wrapped under the key-encryption key
-- (KEK) that the service holds and the database never sees. Personal data moves into
-- `sealed` columns (AES-256-GCM under the household's DEK, bound to household, field and
-- row); what search and dedup compare becomes keyed blind indexes (HMAC-SHA256 under a key
-- derived from the KEK): households.phone_index, members.name_keys, document_index,
-- blocking_keys.block_key. Erasure destroys the wrapped DEK (crypto-shredding) and deletes
-- the blind indexes; the non-personal facts stay, so history stays consistent.
--
-- SQL cannot encrypt (the KEK is not here), so rows written before 0004 keep their
-- plaintext columns until the service's start-up step (backfill.py) seals them, one batch
-- per transaction, and clears the plaintext; new rows never write the plaintext columns.
-- A later migration drops them, once every database has been backfilled.

CREATE TABLE household_keys (
    household_id  uuid PRIMARY KEY,          -- no foreign key: the bulk import COPYs keys
    wrapped_key   bytea,                     -- nonce || AES-GCM(KEK, DEK); NULL once destroyed
    kek_id        text NOT NULL,             -- the KEK that wrapped it (for rotation)
    created_at    timestamptz NOT NULL,
    destroyed_at  timestamptz,               -- erasure: the key is gone for good
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Households ---------------------------------------------------------------------------

ALTER TABLE households
    ADD COLUMN sealed          bytea,        -- {"address", "phone"} under the household's DEK
    ADD COLUMN phone_index     text,         -- blind index of the E.164 phone
    ADD COLUMN erased_at       timestamptz,
    ADD COLUMN erased_by       text,         -- OrgCode that requested the erasure
    ADD COLUMN erasure_reason  text;         -- a code, never free text

ALTER TABLE households DROP CONSTRAINT households_status_check;
ALTER TABLE households ADD CONSTRAINT households_status_check
    CHECK (status IN ('active', 'merged', 'erased'));
-- An erased household may have been merged before: it keeps where it went.
ALTER TABLE households DROP CONSTRAINT households_merged_has_target;
ALTER TABLE households ADD CONSTRAINT households_merged_has_target
    CHECK (CASE status WHEN 'merged' THEN merged_into IS NOT NULL
                       WHEN 'active' THEN merged_into IS NULL
                       ELSE true END);
ALTER TABLE households ADD CONSTRAINT households_erased_when
    CHECK ((status = 'erased') = (erased_at IS NOT NULL));

DROP INDEX households_phone;                 -- on the plaintext phone
CREATE INDEX households_phone_index ON households (phone_index) WHERE phone_index IS NOT NULL;
CREATE INDEX households_unsealed ON households (household_id) WHERE sealed IS NULL;
CREATE INDEX households_merged_into ON households (merged_into) WHERE merged_into IS NOT NULL;

-- Members ------------------------------------------------------------------------------

-- `sealed` holds the names as written, the date of birth and the identity documents under
-- the household's DEK (Latin forms are computed from the names when read). `name_keys`
-- now holds blind indexes of translit.name_key() of each name, not the keys themselves.
ALTER TABLE members ADD COLUMN sealed bytea;
ALTER TABLE members ALTER COLUMN full_name DROP NOT NULL;
ALTER TABLE members ALTER COLUMN date_of_birth DROP NOT NULL;

-- Identity documents: a blind index per document, for search. The numbers themselves are
-- in members.sealed. The 0002 `documents` table keeps rows written before 0004 until the
-- backfill moves them.
CREATE TABLE document_index (
    member_id     uuid NOT NULL REFERENCES members ON DELETE CASCADE,
    household_id  uuid NOT NULL REFERENCES households ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('passport', 'id_card', 'idp_certificate')),
    number_index  text NOT NULL,             -- blind index of the normalised number
    PRIMARY KEY (member_id, kind, number_index)
);
CREATE INDEX document_index_number ON document_index (number_index);
CREATE INDEX document_index_household ON document_index (household_id);

-- Consents and suspicions: an erasure ends both ----------------------------------------

ALTER TABLE consents DROP CONSTRAINT consents_ended_reason_check;
ALTER TABLE consents ADD CONSTRAINT consents_ended_reason_check
    CHECK (ended_reason IN ('withdrawn', 'merged', 'erased'));

ALTER TABLE duplicate_suspicions DROP CONSTRAINT duplicate_suspicions_status_check;
ALTER TABLE duplicate_suspicions ADD CONSTRAINT duplicate_suspicions_status_check
    CHECK (status IN ('open', 'merged', 'dismissed', 'superseded', 'erased'));

-- Intake -------------------------------------------------------------------------------

-- The answers as sent, sealed: with the DEK of the household the submission registered or
-- edited (erased with it), or, while it has none (rejected), with a key derived from the KEK.
ALTER TABLE intake_submissions ADD COLUMN answers_sealed bytea;
ALTER TABLE intake_submissions ALTER COLUMN answers DROP NOT NULL;
CREATE INDEX intake_submissions_unsealed ON intake_submissions (partner_org, submission_id)
    WHERE answers IS NOT NULL;
