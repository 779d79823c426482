-- Schema version 3: events carry their routes' priority, which orders the
-- leases (highest first, then the earliest due), and every instance takes
-- the send slots of smtp.rate and of the routes' rates from one table, so a
-- rate holds for the whole deployment.
ALTER TABLE hookmail_events ADD COLUMN priority smallint NOT NULL DEFAULT 0;
-- Lease reads the highest priority first, each priority's earliest due.
CREATE INDEX hookmail_events_lease ON hookmail_events (priority DESC, due, id) WHERE NOT dead;

-- A rate's next free slot, by the database's clock: every instance takes
-- its slots here, one transaction at a time per row.
CREATE TABLE hookmail_pace (
    key  text PRIMARY KEY,                       -- 'smtp', or 'route:' and the route's name
    free bigint NOT NULL                         -- when the next slot is free, Unix nanoseconds
);
