-- Case management: lifecycle, caseworker assignment and supervisor review; restricted text
-- encrypted field by field; the append-only access log; referrals in and out.
--
-- Encrypted columns hold `enc:v1:<key id>:<base64url>` tokens (AES-256-GCM, sealed by the
-- service for one case and one field, see crypto.py); their CHECKs refuse anything else,
-- so plaintext never lands in them even by mistake.

ALTER TABLE protection_cases DROP CONSTRAINT protection_cases_status_check;
ALTER TABLE protection_cases ADD CONSTRAINT protection_cases_status_check CHECK (status IN (
    'intake', 'assessed', 'plan_in_review', 'case_plan', 'follow_up', 'closure_in_review',
    'closed'));

ALTER TABLE protection_cases
    ADD COLUMN caseworker          text,
    ADD COLUMN risk_level          text CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    ADD COLUMN plan_approved_by    text,
    ADD COLUMN review_requested_by text,
    ADD COLUMN closure_code        text,
    ADD COLUMN resume_status       text,
    ADD COLUMN closed_at           timestamptz,
    ADD COLUMN updated_at          timestamptz,
    -- the hotline system's id of the call: a retried submission opens no second case
    ADD COLUMN hotline_call_id     uuid UNIQUE,
    -- how to reach a hotline caller safely (encrypted)
    ADD COLUMN safe_contact        text
        CHECK (safe_contact ~ '^enc:v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_=-]+$'),
    -- the ProtectionCaseOpened envelope: what later events of the case are caused by
    ADD COLUMN opened_envelope     jsonb;

CREATE INDEX protection_cases_caseworker ON protection_cases (caseworker);
CREATE INDEX protection_cases_household ON protection_cases (household_id);

-- Narratives and case notes. The body is encrypted; who wrote it, when and what kind of
-- note it is are not, so that an auditor can follow the work without reading it.
CREATE TABLE case_notes (
    note_id     uuid        PRIMARY KEY,
    case_ref    text        NOT NULL REFERENCES protection_cases (case_ref),
    kind        text        NOT NULL CHECK (kind IN ('intake', 'assessment', 'plan',
                    'plan_review', 'follow_up', 'note', 'closure_request', 'closure_review')),
    author      text        NOT NULL,
    author_role text        NOT NULL,
    written_at  timestamptz NOT NULL,
    body        text        NOT NULL
        CHECK (body ~ '^enc:v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_=-]+$')
);
CREATE INDEX case_notes_case ON case_notes (case_ref, written_at);

-- Every access to a case (reads included, refusals included): who, in what role, when,
-- which case, what action, and how it ended. Never what was read.
CREATE TABLE case_access_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL,
    user_id  text        NOT NULL,
    role     text        NOT NULL,
    case_ref text,       -- null for accesses to no single case (reading this log)
    action   text        NOT NULL,
    outcome  text        NOT NULL CHECK (outcome IN ('granted', 'denied', 'refused', 'not_found'))
);
CREATE INDEX case_access_log_case ON case_access_log (case_ref, id);
CREATE INDEX case_access_log_user ON case_access_log (user_id, id);

CREATE FUNCTION case_access_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_access_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER case_access_log_append_only
    BEFORE UPDATE OR DELETE ON case_access_log
    FOR EACH ROW EXECUTE FUNCTION case_access_log_refuse_change();

CREATE TRIGGER case_access_log_no_truncate
    BEFORE TRUNCATE ON case_access_log
    FOR EACH STATEMENT EXECUTE FUNCTION case_access_log_refuse_change();

REVOKE ALL ON case_access_log FROM PUBLIC;

-- Referrals protection made to other sectors, and how their targets answered.
CREATE TABLE referrals_out (
    referral_id  uuid        PRIMARY KEY,
    case_ref     text        NOT NULL REFERENCES protection_cases (case_ref),
    household_id uuid        NOT NULL,
    target       text        NOT NULL,
    reason_code  text        NOT NULL,
    urgency      text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('requested', 'accepted', 'declined',
                     'completed', 'withdrawn')),
    requested_by text        NOT NULL,   -- the staff account; the event names the team only
    requested_at timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    answer_code  text,                   -- the target's decline reason or outcome code
    envelope     jsonb       NOT NULL    -- the ReferralRequested envelope (its flow and trace)
);
CREATE INDEX referrals_out_household ON referrals_out (household_id) WHERE status IN (
    'requested', 'accepted');

-- Referrals other sectors made to protection, and what protection answered.
CREATE TABLE referrals_in (
    referral_id    uuid        PRIMARY KEY,
    case_ref       text        REFERENCES protection_cases (case_ref),  -- null if declined
    household_id   uuid        NOT NULL,
    from_sector    text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('accepted', 'declined', 'completed')),
    decline_reason text,
    received_at    timestamptz NOT NULL,
    envelope       jsonb       NOT NULL  -- ReferralRequested's: what our answers are caused by
);
CREATE INDEX referrals_in_case ON referrals_in (case_ref);
