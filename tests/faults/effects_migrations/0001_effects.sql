-- Deliberately no primary key and no unique constraint: a duplicate effect must be visible.
CREATE TABLE effects (
    id           bigserial,
    event_id     uuid        NOT NULL,
    delivery_id  uuid        NOT NULL,
    household_id uuid,
    quantity     numeric     NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX effects_delivery ON effects (delivery_id);
