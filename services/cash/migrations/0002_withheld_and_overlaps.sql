-- Registration withholds a payee from a provider's file (PayeeWithheld): the payment is
-- not made, and its months are free again.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('instructed', 'paid', 'failed', 'unclaimed', 'withheld'));

-- Other agencies' assistance to a household, found by registration in their hashed lists
-- (AssistanceOverlapFound): a cycle covering those months holds the household.
CREATE TABLE agency_overlaps (
    overlap_id   uuid PRIMARY KEY,
    household_id uuid NOT NULL,
    agency       text NOT NULL,
    sector       text NOT NULL,
    first_month  integer NOT NULL,
    last_month   integer NOT NULL,
    found_at     timestamptz NOT NULL
);
CREATE INDEX overlaps_household ON agency_overlaps (household_id);
