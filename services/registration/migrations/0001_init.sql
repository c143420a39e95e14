-- Registration holds the only personal data in AidMesh.

CREATE TABLE households (
    household_id        uuid PRIMARY KEY,
    registered_at       timestamptz NOT NULL,
    channel             text NOT NULL,
    partner_org         text,
    adm1_pcode          text NOT NULL,
    adm2_pcode          text,
    adm3_pcode          text,
    displacement_status text NOT NULL,
    size                integer NOT NULL CHECK (size >= 1),
    address             text,               -- personal data: never leaves this service
    phone               text,               -- personal data: never leaves this service
    vulnerabilities     text[] NOT NULL DEFAULT '{}',
    consents            text[] NOT NULL DEFAULT '{}',
    correlation_id      uuid NOT NULL
);
CREATE INDEX households_adm1 ON households (adm1_pcode);

CREATE TABLE members (
    member_id      uuid PRIMARY KEY,
    household_id   uuid NOT NULL REFERENCES households ON DELETE CASCADE,
    full_name      text NOT NULL,           -- personal data
    sex            text NOT NULL,
    date_of_birth  date NOT NULL,
    relation       text NOT NULL,
    document_number text                    -- personal data
);
CREATE INDEX members_household ON members (household_id);

CREATE TABLE need_assessments (
    assessment_id  uuid PRIMARY KEY,
    household_id   uuid NOT NULL REFERENCES households ON DELETE CASCADE,
    sector         text NOT NULL,
    severity       integer NOT NULL CHECK (severity BETWEEN 1 AND 5),
    details        jsonb,
    assessed_at    timestamptz NOT NULL,
    assessed_by    text NOT NULL
);
