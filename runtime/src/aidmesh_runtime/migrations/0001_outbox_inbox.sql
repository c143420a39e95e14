-- Runtime tables every service has: the transactional outbox and the idempotency inbox.

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,          -- publish order (per key order follows)
    event_id    uuid        NOT NULL UNIQUE,    -- ce_id
    topic       text        NOT NULL,
    key         text        NOT NULL,
    headers     jsonb       NOT NULL,           -- [[name, value], ...] incl. traceparent
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    kafka_partition integer  NOT NULL,
    kafka_offset bigint      NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
