-- Shelter cases, one per assessed shelter need.

CREATE TABLE shelter_cases (
    case_id            uuid PRIMARY KEY,
    household_id       uuid NOT NULL,
    need_assessment_id uuid NOT NULL UNIQUE,
    status             text NOT NULL CHECK (status IN ('open', 'repaired', 'closed')),
    damage_level       text NOT NULL,
    severity           integer NOT NULL,
    adm1_pcode         text NOT NULL,
    adm2_pcode         text,
    adm3_pcode         text,
    household_size     integer NOT NULL,
    opened_at          timestamptz NOT NULL,
    opened_envelope    jsonb NOT NULL,  -- ShelterCaseOpened: the cause of what follows
    closed_at          timestamptz,
    delivery_id        uuid UNIQUE
);
CREATE INDEX shelter_cases_status ON shelter_cases (status, adm1_pcode);
