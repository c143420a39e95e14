-- Issue 24: other agencies' lists of assisted people, as keyed hashes of document numbers
-- under a key the agencies share (interagency.py). Each indexed document also gets the
-- blind index (under the registry's own index key) of its inter-agency hash, so that a list
-- is matched by lookup, without decrypting anything; `interagency_key_id` says under which
-- shared key it was computed (NULL: not yet; the start-up step fills it in, backfill.py).
ALTER TABLE document_index
    ADD COLUMN interagency_index text,
    ADD COLUMN interagency_key_id text;
CREATE INDEX document_index_interagency ON document_index (interagency_index)
    WHERE interagency_index IS NOT NULL;

-- A list as received: counts only, never its hashes (the other agency keeps its list).
-- `list_id` is derived from the list's content, so the same list sent again is the same list.
CREATE TABLE assistance_lists (
    list_id             uuid PRIMARY KEY,
    agency              text NOT NULL,
    sector              text NOT NULL,
    first_month         text NOT NULL,
    months              integer NOT NULL,
    hashes              integer NOT NULL,
    matched_households  integer NOT NULL,
    received_by         text NOT NULL,      -- the token's subject
    received_at         timestamptz NOT NULL,
    matched_at          timestamptz NOT NULL
);

-- One per list and household (AssistanceOverlapFound published once for each).
CREATE TABLE assistance_overlaps (
    overlap_id    uuid PRIMARY KEY,
    list_id       uuid NOT NULL REFERENCES assistance_lists,
    household_id  uuid NOT NULL,
    found_at      timestamptz NOT NULL,
    UNIQUE (list_id, household_id)
);
CREATE INDEX assistance_overlaps_household ON assistance_overlaps (household_id);
