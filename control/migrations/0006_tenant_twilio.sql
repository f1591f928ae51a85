-- A tenant's Twilio auth token: its Media Streams must carry Twilio's
-- X-Twilio-Signature made with it. NULL: none set.
ALTER TABLE tenants ADD COLUMN twilio_auth_token TEXT;
