-- Issue 21: the partner's own reference of a household (its case or beneficiary id), so that
-- after an import or a registration a partner can tell which of its households became which
-- AidMesh household (GET /households?partner_ref=). An identifier, not a name: kept in
-- clear to be searchable, and never published (no event carries it).
ALTER TABLE households ADD COLUMN partner_ref text;
CREATE INDEX households_partner_ref ON households (partner_ref, partner_org)
    WHERE partner_ref IS NOT NULL;
