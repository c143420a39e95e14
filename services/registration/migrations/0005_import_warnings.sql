-- Issue 21: a mistyped document number no longer costs a family its registration. The
-- household is imported, the number kept as given (sealed with the member, never indexed
-- or matched), and the import's report lists the cell as a warning beside the errors.
ALTER TABLE bulk_import_errors
    ADD COLUMN severity text NOT NULL DEFAULT 'error' CHECK (severity IN ('error', 'warning'));
