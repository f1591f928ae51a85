-- The carrier's id of a call (the SIP Call-ID, Twilio's callSid): an
-- attribute, never the key. Calls are keyed by the server's own ids.
ALTER TABLE calls ADD COLUMN external_id TEXT;
