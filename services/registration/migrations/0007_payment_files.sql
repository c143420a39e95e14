-- Issue 24: the financial service provider's file. Cash instructs payments with ids and
-- amounts only (PaymentCycleApproved, PaymentInstructed on aidmesh.cash.payment.v1);
-- registration keeps them here and writes the provider's file from them, adding the
-- payee's details (sealed in the registry, read only when the file is written). A household's
-- bank account (IBAN) is sealed in households.sealed with its address and phone: no column.

-- A cycle as its approval announced it: how many PaymentInstructed follow, worth what.
-- The instructions travel on other partitions (keyed by household) and may arrive first.
CREATE TABLE payment_cycles (
    cycle_id          uuid PRIMARY KEY,
    payments          integer NOT NULL CHECK (payments >= 0),
    total             numeric(14, 2) NOT NULL,
    approved_by       text NOT NULL,
    approved_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    -- When the file was first produced: who is in it and who is withheld was decided then.
    file_produced_at  timestamptz
);

CREATE TABLE payment_instructions (
    payment_id    uuid PRIMARY KEY,
    cycle_id      uuid NOT NULL,
    household_id  uuid NOT NULL,            -- as cash instructed it (merges followed later)
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency      text NOT NULL,
    first_month   text NOT NULL,
    months        integer NOT NULL,
    fsp           text NOT NULL,
    modality      text NOT NULL CHECK (modality IN ('bank_transfer', 'cash_pickup')),
    instructed_at timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    -- The event's envelope (ids, flow, trace; no payload): PayeeWithheld continues its flow.
    envelope      jsonb NOT NULL
);
CREATE INDEX payment_instructions_cycle ON payment_instructions (cycle_id, payment_id);

-- What the first production of a cycle's file decided for each payment: in the file
-- (reason NULL) or withheld with a reason (PayeeWithheld published once, in the same
-- transaction). Later downloads write the same payments.
CREATE TABLE payment_decisions (
    payment_id    uuid PRIMARY KEY REFERENCES payment_instructions,
    cycle_id      uuid NOT NULL REFERENCES payment_cycles,
    household_id  uuid NOT NULL,
    reason        text CHECK (reason IN ('no_data_sharing_consent', 'no_bank_account',
                                         'no_document', 'erased', 'unknown_household')),
    decided_at    timestamptz NOT NULL
);
CREATE INDEX payment_decisions_cycle ON payment_decisions (cycle_id, payment_id);

-- Who downloaded which cycle's file, when, and how many rows it held (no personal data).
CREATE TABLE payment_file_downloads (
    download_id    uuid PRIMARY KEY,
    cycle_id       uuid NOT NULL REFERENCES payment_cycles,
    downloaded_by  text NOT NULL,          -- the token's subject
    org            text NOT NULL,          -- the token's organisation
    rows_written   integer NOT NULL,
    rows_dropped   integer NOT NULL,       -- in the first file, no longer shareable since
    downloaded_at  timestamptz NOT NULL
);
CREATE INDEX payment_file_downloads_cycle ON payment_file_downloads (cycle_id, downloaded_at);
