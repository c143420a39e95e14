-- Mobile medical teams, visit requests (the scheduling queue), scheduled visits, referrals,
-- and clinical records. Clinical notes and diagnoses live only in clinical_records, sealed
-- with AES-GCM by the service: never on a topic, in a log line or in an API answer.

CREATE TABLE teams (
    team_code      text PRIMARY KEY,
    home_oblast    text NOT NULL,
    oblasts        text[] NOT NULL,          -- includes the home oblast
    daily_capacity integer NOT NULL CHECK (daily_capacity BETWEEN 1 AND 200),
    services       text[] NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One per health need or referral to health. `backlog` waits for a team and a day;
-- `scheduled` has a visit (visit_id); a missed visit puts it back in the backlog.
CREATE TABLE visit_requests (
    request_id         uuid PRIMARY KEY,
    household_id       uuid NOT NULL,
    need_assessment_id uuid UNIQUE,
    referral_id        uuid UNIQUE,
    adm1_pcode         text NOT NULL,
    adm2_pcode         text,
    adm3_pcode         text,
    services           text[] NOT NULL,
    priority           integer NOT NULL CHECK (priority BETWEEN 1 AND 100),
    received_at        timestamptz NOT NULL,
    status             text NOT NULL CHECK (status IN ('backlog', 'scheduled', 'completed', 'closed')),
    backlog_reason     text,
    closed_reason      text,
    missed_visits      integer NOT NULL DEFAULT 0,
    not_before         date,
    visit_id           uuid,                 -- the current (or last) visit
    cause              jsonb NOT NULL,       -- envelope the next VisitScheduled is caused by
    CHECK ((need_assessment_id IS NULL) <> (referral_id IS NULL))
);
CREATE INDEX visit_requests_backlog ON visit_requests (priority, received_at)
    WHERE status = 'backlog';
CREATE INDEX visit_requests_household ON visit_requests (household_id);

-- Visits were completed at once by the walking skeleton (those rows stay, as completed);
-- now they are scheduled first and completed, missed, rescheduled or cancelled after.
ALTER TABLE visits
    DROP CONSTRAINT visits_need_assessment_id_key,
    ALTER COLUMN need_assessment_id DROP NOT NULL,
    ALTER COLUMN services_delivered DROP NOT NULL,
    ALTER COLUMN persons_seen DROP NOT NULL,
    ALTER COLUMN completed_at DROP NOT NULL,
    ALTER COLUMN delivery_id DROP NOT NULL,
    ADD COLUMN request_id uuid REFERENCES visit_requests,
    ADD COLUMN status text NOT NULL DEFAULT 'completed'
        CHECK (status IN ('scheduled', 'completed', 'missed', 'rescheduled', 'cancelled')),
    ADD COLUMN scheduled_for date,
    ADD COLUMN services_planned text[],
    ADD COLUMN priority integer,
    ADD COLUMN rescheduled_from uuid,
    ADD COLUMN adm2_pcode text,
    ADD COLUMN adm3_pcode text,
    ADD COLUMN scheduled_at timestamptz,
    ADD COLUMN scheduled_envelope jsonb,     -- VisitScheduled: the cause of what follows
    ADD COLUMN completed_envelope jsonb,
    ADD COLUMN missed_reason text,
    ADD COLUMN closed_at timestamptz;
ALTER TABLE visits ALTER COLUMN status DROP DEFAULT;
CREATE INDEX visits_team_day ON visits (team_code, scheduled_for)
    WHERE status IN ('scheduled', 'completed', 'missed');
CREATE INDEX visits_status ON visits (status, scheduled_for);

-- One delivery per service given on a visit.
CREATE TABLE visit_deliveries (
    delivery_id uuid PRIMARY KEY,
    visit_id    uuid NOT NULL REFERENCES visits,
    service     text NOT NULL,
    UNIQUE (visit_id, service)
);

CREATE TABLE clinical_records (
    visit_id    uuid PRIMARY KEY REFERENCES visits,
    key_id      text NOT NULL,               -- fingerprint of the key that sealed it
    sealed      bytea NOT NULL,              -- nonce || AES-GCM(notes and diagnoses, aad=visit_id)
    recorded_at timestamptz NOT NULL
);

-- Referrals health made (outgoing) and referrals made to health (incoming).
CREATE TABLE referrals (
    referral_id   uuid PRIMARY KEY,
    direction     text NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    household_id  uuid NOT NULL,
    visit_id      uuid,                      -- outgoing: the visit it was made from
    request_id    uuid,                      -- incoming: the visit request it became
    from_sector   text NOT NULL,
    to_target     text NOT NULL,
    reason_code   text NOT NULL,
    urgency       text NOT NULL,
    status        text NOT NULL CHECK (status IN
                      ('received', 'requested', 'accepted', 'declined', 'completed', 'withdrawn')),
    status_reason text,
    requested_at  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    envelope      jsonb NOT NULL             -- the ReferralRequested: the cause of the answers
);
CREATE INDEX referrals_household ON referrals (household_id, direction, status);
