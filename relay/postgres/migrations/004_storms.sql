-- Schema version 4: storm routes' windows, one row per route and
-- conversation, so that every instance counts a conversation's events in
-- the same window (relay.CountStorm). The events a storm folds are digest
-- entries, under a digest name of the window's own.
CREATE TABLE hookmail_storm_windows (
    route   text NOT NULL,
    conv    text NOT NULL,                 -- a hash of the conversation: no phone number is stored
    start   timestamptz,                   -- when the window's first event was counted; NULL only inside the counting transaction
    emailed text[] NOT NULL DEFAULT '{}',  -- the ids of the events emailed one by one in the window
    folded  integer NOT NULL DEFAULT 0,    -- the events folded into the window's digest
    expires timestamptz NOT NULL,          -- when the row may be deleted
    PRIMARY KEY (route, conv)
);
CREATE INDEX hookmail_storm_windows_expires ON hookmail_storm_windows (expires);
