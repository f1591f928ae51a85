-- The LiveKit room a call dispatched into one served (see control/src/livekit.rs).
ALTER TABLE calls ADD COLUMN room TEXT;
