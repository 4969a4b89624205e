-- The audit log becomes tamper-evident. Records stay as they are written (in the transaction of the change they
-- describe); a sealer then chains them in sequence order, each seal holding SHA-256(previous hash | record), and
-- periodically signs a checkpoint (sequence, head hash, time) with a key kept outside the database.
CREATE TABLE audit_seals (
  seq bigint PRIMARY KEY,
  hash bytea NOT NULL,
  sealed_at timestamptz NOT NULL DEFAULT now()
);

-- The end of the chain so far: one row, locked by the sealer, so that two sealers never chain the same record.
CREATE TABLE audit_chain_head (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq bigint NOT NULL,
  hash bytea NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_checkpoints (
  seq bigint PRIMARY KEY,
  head_hash bytea NOT NULL,
  created_at timestamptz NOT NULL,
  key_id text NOT NULL,
  signature bytea NOT NULL
);

-- Append-only like the records themselves (migration 0001): no update, delete or truncate of seals or
-- checkpoints, whoever asks (a superuser can disable the triggers; the signed checkpoints are what catch that).
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals FOR EACH ROW EXECUTE FUNCTION coffer_refuse_change();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals FOR EACH STATEMENT EXECUTE FUNCTION coffer_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION coffer_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION coffer_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_seals, audit_checkpoints FROM PUBLIC;
