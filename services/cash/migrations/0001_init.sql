-- Multi-purpose cash: entitlements, payment cycles and their lists, payments, the months
-- each household is paid for, and the providers' reports. Ids, codes and amounts only.

-- One entitlement per household: its latest assessed cash need decides.
CREATE TABLE entitlements (
    household_id   uuid PRIMARY KEY,
    assessment_id  uuid NOT NULL,
    severity       integer NOT NULL,
    eligible       boolean NOT NULL,
    monthly_amount numeric(14, 2) NOT NULL,
    priority       integer NOT NULL,
    explanation    jsonb NOT NULL,
    assessed_at    timestamptz NOT NULL,
    need_envelope  jsonb NOT NULL,  -- NeedAssessed: the cause of the household's payments
    decided_at     timestamptz NOT NULL
);
CREATE INDEX entitlements_eligible ON entitlements (household_id) WHERE eligible;

CREATE TABLE cycles (
    cycle_id          uuid PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('proposed', 'approved')),
    adm1_pcodes       text[] NOT NULL,
    first_month       integer NOT NULL,  -- year * 12 + month - 1
    months            integer NOT NULL,
    budget            numeric(14, 2) NOT NULL,
    fsp               text NOT NULL,
    modality          text NOT NULL,
    opened_by_org     text NOT NULL,
    opened_by         text NOT NULL,     -- the token's subject: the four-eyes rule compares it
    opened_at         timestamptz NOT NULL,
    opened_envelope   jsonb NOT NULL,
    approved_by_org   text,
    approved_by       text,
    approved_at       timestamptz,
    payments          integer,
    total             numeric(14, 2)
);

-- The list a cycle proposes: every candidate household, proposed, waiting or held.
CREATE TABLE cycle_lines (
    cycle_id     uuid NOT NULL REFERENCES cycles,
    household_id uuid NOT NULL,
    rank         integer,
    amount       numeric(14, 2) NOT NULL,
    status       text NOT NULL CHECK (status IN ('proposed', 'waiting', 'held')),
    reason       text,
    flags        text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (cycle_id, household_id)
);
CREATE INDEX cycle_lines_order ON cycle_lines (cycle_id, status, rank);

CREATE TABLE payments (
    payment_id          uuid PRIMARY KEY,
    cycle_id            uuid NOT NULL REFERENCES cycles,
    household_id        uuid NOT NULL,
    amount              numeric(14, 2) NOT NULL,
    first_month         integer NOT NULL,
    months              integer NOT NULL,
    status              text NOT NULL
                        CHECK (status IN ('instructed', 'paid', 'failed', 'unclaimed')),
    instructed_envelope jsonb NOT NULL,  -- PaymentInstructed: the cause of its outcome
    report_id           uuid,
    reason              text,
    paid_at             timestamptz
);
CREATE INDEX payments_of_cycle ON payments (cycle_id, status);
CREATE INDEX payments_of_household ON payments (household_id);

-- The months a household is paid for (instructed or paid): the primary key is the rule
-- "one MPCA per household per month". A payment not paid gives its months back.
CREATE TABLE household_months (
    household_id uuid NOT NULL,
    month        integer NOT NULL,
    payment_id   uuid NOT NULL REFERENCES payments,
    PRIMARY KEY (household_id, month)
);
CREATE INDEX household_months_payment ON household_months (payment_id);

-- Other sectors' cash-like assistance to a household, for the approver's flags.
CREATE TABLE other_assistance (
    delivery_id  uuid PRIMARY KEY,
    household_id uuid NOT NULL,
    activity     text NOT NULL,
    first_month  integer NOT NULL,
    last_month   integer NOT NULL
);
CREATE INDEX other_assistance_household ON other_assistance (household_id);

-- Reports imported from providers; the same file twice answers the first import's result.
CREATE TABLE reports (
    report_id     uuid PRIMARY KEY,
    cycle_id      uuid NOT NULL REFERENCES cycles,
    sha256        text NOT NULL,
    imported_by   text NOT NULL,
    imported_at   timestamptz NOT NULL,
    result        jsonb NOT NULL,
    UNIQUE (cycle_id, sha256)
);
