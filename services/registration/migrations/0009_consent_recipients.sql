-- Issue 24: consent to data sharing with one financial service provider. A provider's file
-- holds a household only if it consented to its details being given to THAT provider, so a
-- consent record may name a recipient (an FSP code); NULL is the purpose in general. Only
-- data sharing has recipients.
ALTER TABLE consents
    ADD COLUMN recipient text,
    ADD CONSTRAINT consents_recipient_check
        CHECK (recipient IS NULL OR purpose = 'data_sharing');

-- One active consent per household, purpose and recipient (the general one included).
DROP INDEX consents_active;
CREATE UNIQUE INDEX consents_active ON consents (household_id, purpose, coalesce(recipient, ''))
    WHERE withdrawn_at IS NULL;

-- households.consents stays the set of purposes consented to in general (what the sectors
-- are told and what opens a household to other partners); the providers a household
-- consents to share its details with are kept beside it, from the same records.
ALTER TABLE households ADD COLUMN data_sharing_with text[] NOT NULL DEFAULT '{}';
