-- Visits by mobile medical teams. Service codes only in the shared facts; clinical notes,
-- when later added, stay in this database and never on a topic or in a log line.

CREATE TABLE visits (
    visit_id           uuid PRIMARY KEY,
    household_id       uuid NOT NULL,
    need_assessment_id uuid NOT NULL UNIQUE,
    team_code          text NOT NULL,
    services_delivered text[] NOT NULL,
    persons_seen       integer NOT NULL,
    adm1_pcode         text NOT NULL,
    completed_at       timestamptz NOT NULL,
    delivery_id        uuid NOT NULL UNIQUE
);
CREATE INDEX visits_household ON visits (household_id);
