-- 0002: the household registry proper (issue 5).
--
-- Adds structured names with their Latin forms and search keys, identity documents,
-- per-purpose consent records, the duplicate review queue with its blocking keys, the kept
-- intake submissions (Kobo and partners), merges, and bulk-import bookkeeping.
--
-- Personal data (names, phones, documents, addresses, raw intake answers) lives only in
-- these tables; events carry ids, codes, counts and flags.
--
-- Writers other than the HTTP/intake use cases (the COPY-based bulk import) must keep these
-- invariants, which the use cases also keep:
--   * households.consents is the set of purposes with an active row in `consents`;
--   * households.screening is the vulnerability screening result the domain computed;
--   * members.name_keys holds name_key() of family, given and patronymic names (non-empty
--     ones), and members.*_latin the official transliteration (to_latin());
--   * `documents` holds every identity document, normalised (kind, NUMBER);
--   * `blocking_keys` holds dedup.blocking_keys() of every active household (none for a
--     merged one), so dedup candidates are "households sharing a key";
--   * events go through the runtime's `outbox` table (event_id, topic, key, headers,
--     payload), followed by `NOTIFY aidmesh_outbox` to wake the relay.

-- Households ---------------------------------------------------------------------------

ALTER TABLE households
    ADD COLUMN status          text NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'merged')),
    ADD COLUMN merged_into     uuid REFERENCES households,   -- set when status = 'merged'
    ADD COLUMN merged_at       timestamptz,
    ADD COLUMN updated_at      timestamptz,
    ADD COLUMN version         integer NOT NULL DEFAULT 1,   -- +1 on every update
    -- The vulnerability screening result: {"flags": [...], "score": int, "level": "..."}.
    ADD COLUMN screening       jsonb,
    -- Set by the bulk import: which import and which CSV row (1-based, after the header)
    -- created the household, so an interrupted import resumes after the last committed row.
    ADD COLUMN import_id       uuid,
    ADD COLUMN import_row      integer,
    ADD CONSTRAINT households_merged_has_target
        CHECK ((status = 'merged') = (merged_into IS NOT NULL));

-- `phone` (from 0001) now holds E.164 (+380XXXXXXXXX): the search and dedup key.
CREATE INDEX households_phone ON households (phone) WHERE phone IS NOT NULL;
CREATE INDEX households_adm2 ON households (adm2_pcode) WHERE adm2_pcode IS NOT NULL;
CREATE INDEX households_adm3 ON households (adm3_pcode) WHERE adm3_pcode IS NOT NULL;
CREATE INDEX households_registered ON households (registered_at DESC, household_id DESC);
CREATE UNIQUE INDEX households_import_row ON households (import_id, import_row)
    WHERE import_id IS NOT NULL;

-- Members ------------------------------------------------------------------------------

-- `full_name` (from 0001) stays: the name as written, "Given Patronymic Family".
ALTER TABLE members
    ADD COLUMN family_name        text,          -- Ukrainian Cyrillic as given
    ADD COLUMN given_name         text,
    ADD COLUMN patronymic         text,
    ADD COLUMN family_name_latin  text,          -- official 2010 transliteration (KMU No 55)
    ADD COLUMN given_name_latin   text,
    ADD COLUMN patronymic_latin   text,
    ADD COLUMN name_keys          text[] NOT NULL DEFAULT '{}',  -- translit.name_key() of each name
    ADD COLUMN vulnerabilities    text[] NOT NULL DEFAULT '{}',  -- disability, chronic_illness, ...
    ADD COLUMN position           integer NOT NULL DEFAULT 0;   -- order as submitted (head first)

CREATE INDEX members_name_keys ON members USING gin (name_keys);

-- Identity documents, normalised: passport "ЕК123456", id_card "123456789",
-- idp_certificate "1234-5678901234". `members.document_number` (0001) keeps the first one
-- for readers of the old shape.
CREATE TABLE documents (
    member_id     uuid NOT NULL REFERENCES members ON DELETE CASCADE,
    household_id  uuid NOT NULL REFERENCES households ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('passport', 'id_card', 'idp_certificate')),
    number        text NOT NULL,                 -- personal data
    PRIMARY KEY (member_id, kind, number)
);
CREATE INDEX documents_number ON documents (number);
CREATE INDEX documents_household ON documents (household_id);

-- Needs: 0001's need_assessments is the history; the current need of a sector is the latest.
CREATE INDEX need_assessments_current ON need_assessments (household_id, sector, assessed_at DESC);

-- Consent, per purpose, with who and when -----------------------------------------------

CREATE TABLE consents (
    consent_id    uuid PRIMARY KEY,
    household_id  uuid NOT NULL REFERENCES households ON DELETE CASCADE,
    purpose       text NOT NULL CHECK (purpose IN ('registration', 'data_sharing', 'referral')),
    recorded_by   text NOT NULL,                 -- OrgCode, never a person's name
    recorded_at   timestamptz NOT NULL,
    withdrawn_by  text,
    withdrawn_at  timestamptz,
    -- Why it ended: 'withdrawn' by the household, or 'merged' (the household merged away).
    ended_reason  text CHECK (ended_reason IN ('withdrawn', 'merged')),
    CHECK ((withdrawn_at IS NULL) = (ended_reason IS NULL))
);
CREATE UNIQUE INDEX consents_active ON consents (household_id, purpose) WHERE withdrawn_at IS NULL;
CREATE INDEX consents_household ON consents (household_id, recorded_at);

-- Deduplication ------------------------------------------------------------------------

-- dedup.blocking_keys() of each active household: candidates for a new registration are the
-- households sharing any key. No foreign key, so the bulk import can COPY millions of rows
-- cheaply; the use cases delete a household's keys when it changes or is merged.
CREATE TABLE blocking_keys (
    block_key     text NOT NULL,
    household_id  uuid NOT NULL,
    PRIMARY KEY (block_key, household_id)
);
CREATE INDEX blocking_keys_household ON blocking_keys (household_id);

-- The review queue. One row per pair of households, whichever was registered first.
CREATE TABLE duplicate_suspicions (
    suspicion_id            uuid PRIMARY KEY,
    household_id            uuid NOT NULL REFERENCES households,  -- the newer registration
    candidate_household_id  uuid NOT NULL REFERENCES households,  -- the one it resembles
    score                   double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    reasons                 text[] NOT NULL,                      -- DuplicateReason codes
    detected_at             timestamptz NOT NULL,
    status                  text NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'merged', 'dismissed', 'superseded')),
    resolved_at             timestamptz,
    resolved_by             text,                                 -- OrgCode
    survivor_household_id   uuid REFERENCES households,           -- when merged
    CHECK (household_id <> candidate_household_id)
);
CREATE UNIQUE INDEX duplicate_suspicions_pair ON duplicate_suspicions (
    LEAST(household_id, candidate_household_id), GREATEST(household_id, candidate_household_id)
);
CREATE INDEX duplicate_suspicions_queue ON duplicate_suspicions (status, detected_at, suspicion_id);
CREATE INDEX duplicate_suspicions_household ON duplicate_suspicions (household_id);
CREATE INDEX duplicate_suspicions_candidate ON duplicate_suspicions (candidate_household_id);

-- Intake (KoboToolbox REST Services and the partners' intake topic) ----------------------

-- Every submission is kept, mapped or not: idempotency on (partner_org, submission_id),
-- edits follow `replaces`, and a rejected one can be fixed and re-mapped.
CREATE TABLE intake_submissions (
    partner_org     text NOT NULL,
    submission_id   text NOT NULL,               -- Kobo meta/instanceID, or the partner's id
    source          text NOT NULL CHECK (source IN ('kobo', 'partner')),
    format          text NOT NULL,               -- kobo_json | aidmesh_household_v1
    form_id         text,
    replaces        text,                        -- the submission this one edits
    submitted_at    timestamptz,
    received_at     timestamptz NOT NULL,
    answers         jsonb NOT NULL,              -- personal data, as sent
    status          text NOT NULL
                    CHECK (status IN ('registered', 'updated', 'unchanged', 'rejected', 'superseded')),
    reasons         jsonb NOT NULL DEFAULT '[]', -- [{"field": ..., "reason": ...}], no values
    household_id    uuid REFERENCES households,
    processed_at    timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (partner_org, submission_id)
);
CREATE INDEX intake_submissions_rejected ON intake_submissions (received_at, partner_org, submission_id)
    WHERE status = 'rejected';
CREATE INDEX intake_submissions_replaces ON intake_submissions (partner_org, replaces)
    WHERE replaces IS NOT NULL;
CREATE INDEX intake_submissions_household ON intake_submissions (household_id);

-- Bulk import (CSV files from partners) ---------------------------------------------------

CREATE TABLE bulk_imports (
    import_id       uuid PRIMARY KEY,
    partner_org     text NOT NULL,
    file_name       text NOT NULL,
    file_sha256     text NOT NULL,               -- the same file resumes the same import
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    rows_done       integer NOT NULL DEFAULT 0,  -- rows (after the header) committed so far
    rows_imported   integer NOT NULL DEFAULT 0,
    rows_rejected   integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX bulk_imports_file ON bulk_imports (partner_org, file_sha256);

CREATE TABLE bulk_import_errors (
    import_id   uuid NOT NULL REFERENCES bulk_imports ON DELETE CASCADE,
    row_number  integer NOT NULL,                -- 1-based data row, as a spreadsheet shows it
    field       text NOT NULL,
    reason      text NOT NULL,                   -- never the value itself
    PRIMARY KEY (import_id, row_number, field)
);
