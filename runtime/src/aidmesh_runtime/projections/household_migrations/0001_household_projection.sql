-- What a sector needs to know about a household, built from the household topic.
-- Ids, counts, codes and flags only: personal data stays in registration.
CREATE TABLE household_projection (
    household_id        uuid PRIMARY KEY,
    adm1_pcode          text NOT NULL,
    adm2_pcode          text,
    adm3_pcode          text,
    displacement_status text NOT NULL,
    size                integer NOT NULL,
    vulnerabilities     text[] NOT NULL,
    consents            text[] NOT NULL,
    registered_at       timestamptz NOT NULL,
    last_event_id       uuid NOT NULL
);

-- Needs for this sector that wait for their household's facts (topics have no order
-- between them). acted_at is set once the sector has acted on the need.
CREATE TABLE pending_need (
    assessment_id uuid PRIMARY KEY,
    household_id  uuid NOT NULL,
    payload       jsonb NOT NULL,   -- the NeedAssessed event
    envelope      jsonb NOT NULL,   -- its envelope: the cause of what the sector does
    received_at   timestamptz NOT NULL DEFAULT now(),
    acted_at      timestamptz
);
CREATE INDEX pending_need_waiting ON pending_need (household_id) WHERE acted_at IS NULL;
