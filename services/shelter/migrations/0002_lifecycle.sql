-- The repair and NFI lifecycle: technical assessment, repair plan, referrals to state
-- compensation, deliveries without a case (winterization kits, rental assistance),
-- collective-centre (facility) cases, post-distribution monitoring.

-- Household cases ------------------------------------------------------------------------
ALTER TABLE shelter_cases DROP CONSTRAINT shelter_cases_status_check;
ALTER TABLE shelter_cases ADD CONSTRAINT shelter_cases_status_check CHECK (status IN (
    'open', 'assessed', 'planned', 'awaiting_consent', 'referred', 'repaired', 'closed'));
-- A case opened from a referral has no need assessment.
ALTER TABLE shelter_cases ALTER COLUMN need_assessment_id DROP NOT NULL;
ALTER TABLE shelter_cases
    ADD COLUMN referral_id     uuid UNIQUE,  -- the referral to shelter that opened it
    ADD COLUMN priority        integer NOT NULL DEFAULT 50 CHECK (priority BETWEEN 1 AND 100),
    ADD COLUMN last_envelope   jsonb,        -- the case's latest event: the cause of the next
    ADD COLUMN assessed_at     timestamptz,
    ADD COLUMN assessed_by     text,         -- a team code, never a person's name
    ADD COLUMN estimated_cost  numeric(14, 2),
    ADD COLUMN boq             jsonb,        -- bill of quantities: item codes, quantities, costs
    ADD COLUMN category        text CHECK (category IN ('light', 'medium')),
    ADD COLUMN modality        text,
    ADD COLUMN budget          numeric(14, 2),
    ADD COLUMN planned_at      timestamptz,
    ADD COLUMN repair_value    numeric(14, 2),
    ADD COLUMN close_reason    text;
UPDATE shelter_cases SET last_envelope = opened_envelope,
                         priority = greatest(1, 100 - 10 * severity);
UPDATE shelter_cases SET close_reason = 'repaired' WHERE status = 'repaired';
ALTER TABLE shelter_cases ALTER COLUMN last_envelope SET NOT NULL;
DROP INDEX shelter_cases_status;
-- The work queue: by status and oblast, most urgent first.
CREATE INDEX shelter_cases_queue ON shelter_cases (status, adm1_pcode, priority, opened_at);
CREATE INDEX shelter_cases_household ON shelter_cases (household_id);

-- Referrals shelter made (heavy damage to state compensation) -----------------------------
CREATE TABLE referrals (
    referral_id  uuid PRIMARY KEY,
    case_id      uuid NOT NULL REFERENCES shelter_cases,
    household_id uuid NOT NULL,
    target       text NOT NULL,
    status       text NOT NULL CHECK (status IN ('requested', 'accepted', 'declined', 'completed')),
    outcome_code text,                 -- the decline reason or the completion outcome
    requested_at timestamptz NOT NULL,
    closed_at    timestamptz,
    envelope     jsonb NOT NULL        -- ReferralRequested: the cause of what follows
);
CREATE INDEX referrals_open ON referrals (household_id) WHERE status IN ('requested', 'accepted');
CREATE INDEX referrals_case ON referrals (case_id);

-- Referrals to shelter from other sectors; one waits here until its household is known.
CREATE TABLE inbound_referrals (
    referral_id  uuid PRIMARY KEY,
    household_id uuid NOT NULL,
    payload      jsonb NOT NULL,       -- the ReferralRequested event
    envelope     jsonb NOT NULL,       -- its envelope: the cause of our answer
    received_at  timestamptz NOT NULL DEFAULT now(),
    decision     text CHECK (decision IN ('accepted', 'declined')),
    decided_at   timestamptz,
    case_id      uuid
);
CREATE INDEX inbound_referrals_waiting ON inbound_referrals (household_id) WHERE decided_at IS NULL;

-- Sharing stopped: purposes a household withdrew and has not consented to again.
CREATE TABLE withdrawn_consents (
    household_id uuid NOT NULL,
    purpose      text NOT NULL,
    withdrawn_at timestamptz NOT NULL,
    PRIMARY KEY (household_id, purpose)
);

-- The flow (correlation id) of each household's registration, so that assistance given
-- without a case (a winterization kit) is part of the household's flow.
CREATE TABLE household_flows (
    household_id   uuid PRIMARY KEY,
    correlation_id uuid NOT NULL
);

-- Collective centres -----------------------------------------------------------------------
CREATE TABLE facilities (
    facility_id uuid PRIMARY KEY,
    name        text NOT NULL,         -- a building's name: kept here, never on a topic
    capacity    integer NOT NULL CHECK (capacity >= 1),
    adm1_pcode  text NOT NULL,
    adm2_pcode  text,
    adm3_pcode  text,
    created_at  timestamptz NOT NULL
);
CREATE TABLE facility_cases (
    case_id         uuid PRIMARY KEY,
    facility_id     uuid NOT NULL REFERENCES facilities,
    status          text NOT NULL CHECK (status IN ('open', 'refurbished')),
    opened_at       timestamptz NOT NULL,
    opened_envelope jsonb NOT NULL,    -- FacilityCaseOpened: the cause of the delivery
    closed_at       timestamptz,
    delivery_id     uuid UNIQUE
);
CREATE INDEX facility_cases_facility ON facility_cases (facility_id);

-- Every delivery shelter made: what the duplicate guard and monitoring read -------------
CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    household_id    uuid,
    facility_id     uuid,
    case_id         uuid,              -- the repair or facility case, if any
    activity        text NOT NULL,
    season          text,              -- heating season, for seasonal assistance
    modality        text NOT NULL,
    quantity        numeric(12, 3) NOT NULL,
    unit            text NOT NULL,
    value           numeric(14, 2),
    persons_reached integer NOT NULL,
    partner_org     text NOT NULL,
    adm1_pcode      text NOT NULL,
    adm2_pcode      text,
    adm3_pcode      text,
    delivered_at    timestamptz NOT NULL,
    CHECK ((household_id IS NULL) <> (facility_id IS NULL))
);
CREATE INDEX deliveries_household ON deliveries (household_id, activity, season);

-- Post-distribution monitoring: one follow-up per delivery.
CREATE TABLE delivery_monitoring (
    delivery_id  uuid PRIMARY KEY REFERENCES deliveries,
    received     boolean NOT NULL,
    satisfaction integer CHECK (satisfaction BETWEEN 1 AND 5),
    use_code     text,
    monitored_by text NOT NULL,        -- a team code
    monitored_at timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL
);
