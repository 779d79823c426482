-- Schema version 2: events keep the wire format they arrived in and, for
-- formats other than zender (whose content is its data fields), the
-- canonical content: who sent what to whom, when, and attachments.
ALTER TABLE hookmail_events ADD COLUMN format text NOT NULL DEFAULT '';
ALTER TABLE hookmail_events ADD COLUMN content jsonb;
ALTER TABLE hookmail_digest_entries ADD COLUMN format text NOT NULL DEFAULT '';
ALTER TABLE hookmail_digest_entries ADD COLUMN content jsonb;
