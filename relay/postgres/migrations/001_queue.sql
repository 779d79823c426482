-- Schema version 1: the queue, its dedup keys, and the digests.
--
-- Times hookmail compares (due, lease_expires, dedup and claim expiries)
-- come from the database's clock, so instances whose clocks differ agree on
-- them; times it records for operators (history, died, requeued,
-- collected) come from the instance that wrote them. Every name starts with
-- hookmail_, so the tables can share a schema with others.

-- Waiting events and dead letters, one row each.
CREATE TABLE hookmail_events (
    id            text PRIMARY KEY,              -- hookmail's event id, a UUIDv7: id order is received order
    type          text NOT NULL,
    source        text NOT NULL,
    data          jsonb NOT NULL,                -- the sender's fields, {"name": "value"}
    received      timestamptz NOT NULL,
    dead          boolean NOT NULL DEFAULT false,
    due           bigint NOT NULL,               -- the next attempt, Unix nanoseconds
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    delivered     jsonb NOT NULL DEFAULT '[]',   -- routes served: ["route"]
    refused       jsonb NOT NULL DEFAULT '{}',   -- routes refused for good: {"route": "why"}
    owed          jsonb NOT NULL DEFAULT '{}',   -- recipients deferred: {"route": ["addr"]}
    history       jsonb NOT NULL DEFAULT '[]',   -- [{"at": time, "what": text}], the last 20
    requeued      timestamptz,
    dead_reason   text NOT NULL DEFAULT '',
    died          timestamptz,
    lease_token   text,                          -- the worker lease holding it, if any
    lease_expires timestamptz
);
-- Lease reads the earliest due first; List pages waiting events in due order.
CREATE INDEX hookmail_events_due ON hookmail_events (due, id) WHERE NOT dead;
-- List pages the dead letters in id order.
CREATE INDEX hookmail_events_dead ON hookmail_events (id) WHERE dead;
-- Leases in force: few, and read to know when the next one lapses.
CREATE INDEX hookmail_events_leased ON hookmail_events (lease_expires) WHERE lease_expires IS NOT NULL;

-- The dedup keys of events stored within dedup.window.
CREATE TABLE hookmail_dedup (
    key     bytea PRIMARY KEY,                   -- SHA-256 of the event's dedup key
    event   text NOT NULL,                       -- the id of the event first stored with it
    expires timestamptz NOT NULL
);
CREATE INDEX hookmail_dedup_expires ON hookmail_dedup (expires);

-- Events digest routes collected, until their digest goes out.
CREATE TABLE hookmail_digest_entries (
    route     text NOT NULL,
    event     text NOT NULL,
    type      text NOT NULL,
    source    text NOT NULL,
    data      jsonb NOT NULL,
    received  timestamptz NOT NULL,
    collected timestamptz NOT NULL,
    to_addrs  text[] NOT NULL DEFAULT '{}',
    cc_addrs  text[] NOT NULL DEFAULT '{}',
    bcc_addrs text[] NOT NULL DEFAULT '{}',
    reply_to  text NOT NULL DEFAULT '',
    PRIMARY KEY (route, event)
);

-- Which instance sends a route's digest now, until when.
CREATE TABLE hookmail_digest_claims (
    route   text PRIMARY KEY,
    owner   text NOT NULL,                       -- the claiming instance's random id
    expires timestamptz NOT NULL
);
