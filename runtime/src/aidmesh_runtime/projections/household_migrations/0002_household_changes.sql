-- HouseholdUpdated, HouseholdMerged and the consent events change the projection too.
-- A merged household keeps its row, pointing at the household that stays, so that a need
-- or a referral still arriving for the old id lands on the right household.
ALTER TABLE household_projection ADD COLUMN merged_into uuid;
ALTER TABLE household_projection ADD COLUMN updated_at timestamptz;
CREATE INDEX household_projection_merged_into ON household_projection (merged_into)
    WHERE merged_into IS NOT NULL;
