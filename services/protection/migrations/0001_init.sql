-- Protection cases: the most sensitive data AidMesh holds. Only this service reads these
-- tables; the shared topic carries the pseudonymous case reference and coarse codes.

CREATE TABLE protection_cases (
    case_ref           text PRIMARY KEY,
    household_id       uuid,               -- null for an anonymous hotline case
    source             text NOT NULL,
    need_assessment_id uuid UNIQUE,
    severity           integer NOT NULL,
    concern_codes      text[] NOT NULL,
    status             text NOT NULL CHECK (status IN ('intake', 'assessment', 'open', 'closed')),
    opened_at          timestamptz NOT NULL
);
