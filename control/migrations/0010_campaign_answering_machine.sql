-- A campaign's own answering-machine settings (JSON, see
-- control/src/agent/answering.rs); NULL: its agent's.
ALTER TABLE campaigns ADD COLUMN answering_machine TEXT;
