-- The audit ledger: one row per event seen on any catalogue topic, hash-chained in one
-- global sequence (docs/adr/0005-audit-ledger-hash-chain.md). Append-only: rows are
-- inserted and read, never changed. The trigger below refuses UPDATE, DELETE and TRUNCATE
-- for everyone but a superuser (or the table owner) who disables it, which is what
-- `python -m aidmesh_audit verify` is for.

CREATE TABLE audit_ledger (
    seq             bigint      PRIMARY KEY CHECK (seq >= 1),
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL UNIQUE,
    ce_id           uuid        NOT NULL UNIQUE,
    ce_type         text        NOT NULL,
    ce_source       text        NOT NULL,
    ce_subject      text,
    ce_time         timestamptz NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    payload         text        NOT NULL,   -- the event's JSON, as text
    received_at     timestamptz NOT NULL
);
CREATE INDEX audit_ledger_subject ON audit_ledger (ce_subject);
CREATE INDEX audit_ledger_correlation ON audit_ledger (correlation_id);

CREATE FUNCTION audit_ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_ledger_append_only
    BEFORE UPDATE OR DELETE ON audit_ledger
    FOR EACH ROW EXECUTE FUNCTION audit_ledger_refuse_change();

CREATE TRIGGER audit_ledger_no_truncate
    BEFORE TRUNCATE ON audit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION audit_ledger_refuse_change();

-- Nobody but the owner gets more than INSERT and SELECT. On a real cluster the owner is a
-- migrator role and the service logs in as a role granted only these two privileges.
REVOKE ALL ON audit_ledger FROM PUBLIC;
