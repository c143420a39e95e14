-- 0003: households registered before 0002 get what SQL alone can give them.
--
-- Consent records (one per purpose in households.consents, recorded by the partner or the
-- default team at registration time), so that consent can be withdrawn; documents from
-- members.document_number, by their format, so that search and merges see them; and the
-- structured names split from full_name ("Given Patronymic Family"). The rest needs the
-- service's code: Latin forms and name keys come when the members are next updated, the
-- screening and blocking keys with any update of members, contact or location. On a
-- database created after 0002 this changes nothing.

INSERT INTO consents (consent_id, household_id, purpose, recorded_by, recorded_at)
SELECT gen_random_uuid(), h.household_id, purpose, COALESCE(h.partner_org, 'IOM-REG'),
       h.registered_at
FROM households h, unnest(h.consents) AS purpose
WHERE NOT EXISTS (SELECT 1 FROM consents c WHERE c.household_id = h.household_id);

INSERT INTO documents (member_id, household_id, kind, number)
SELECT m.member_id, m.household_id,
       CASE WHEN m.document_number ~ '^[А-ЩЬЮЯЄІЇҐ]{2}[0-9]{6}$' THEN 'passport'
            WHEN m.document_number ~ '^[0-9]{9}$' THEN 'id_card'
            ELSE 'idp_certificate' END,
       m.document_number
FROM members m
WHERE m.document_number ~ '^([А-ЩЬЮЯЄІЇҐ]{2}[0-9]{6}|[0-9]{9}|[0-9]{4}-[0-9]{10})$'
  AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.member_id = m.member_id)
ON CONFLICT DO NOTHING;

UPDATE members
SET given_name = split_part(full_name, ' ', 1),
    family_name = regexp_replace(full_name, '^.*\s', ''),
    patronymic = NULLIF(regexp_replace(full_name, '^\S+\s*(.*?)\s*\S+$', '\1'), '')
WHERE family_name IS NULL AND full_name ~ '^\S+(\s+\S+)+$';
