-- Budget: the life of a gpt_usage_log row, enforced by the database as well as by the service.
--
--   reserved ──▶ committed      (the call happened; actual usage recorded)
--      │   └───▶ released       (the call was never made; the only status that stops counting)
--      └──────▶ expired ──▶ committed   (TTL passed; still counts; a late commit records usage)
--
-- The service moves rows with compare-and-set updates; this trigger is the backstop that makes
-- any other move (a bug, a hand-written UPDATE) fail loudly instead of silently un-counting a
-- call. What a reservation was granted (who, when, what it may use) never changes.

ALTER TABLE oracle.gpt_usage_log
  ADD CONSTRAINT gpt_usage_log_committed_has_usage CHECK (
    status <> 'committed'
    OR (prompt_tokens IS NOT NULL AND completion_tokens IS NOT NULL
        AND cost_micros IS NOT NULL AND committed_at IS NOT NULL)),
  ADD CONSTRAINT gpt_usage_log_released_has_time CHECK (status <> 'released' OR released_at IS NOT NULL);

CREATE OR REPLACE FUNCTION oracle.gpt_usage_log_transition() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = oracle, pg_temp
AS $$
BEGIN
  IF (NEW.reservation_id, NEW.user_id, NEW.purpose, NEW.model, NEW.max_tokens, NEW.estimated_tokens,
      NEW.estimated_cost_micros, NEW.reserved_at, NEW.expires_at)
     IS DISTINCT FROM
     (OLD.reservation_id, OLD.user_id, OLD.purpose, OLD.model, OLD.max_tokens, OLD.estimated_tokens,
      OLD.estimated_cost_micros, OLD.reserved_at, OLD.expires_at) THEN
    RAISE EXCEPTION 'gpt_usage_log: what a reservation was granted never changes'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.status IN ('committed', 'released') THEN
    RAISE EXCEPTION 'gpt_usage_log: a % reservation is final', OLD.status
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'reserved' AND NEW.status IN ('committed', 'released', 'expired'))
    OR (OLD.status = 'expired' AND NEW.status = 'committed')) THEN
    RAISE EXCEPTION 'gpt_usage_log: % -> % is not a transition', OLD.status, NEW.status
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION oracle.gpt_usage_log_transition() FROM PUBLIC;

CREATE TRIGGER gpt_usage_log_transition BEFORE UPDATE ON oracle.gpt_usage_log
  FOR EACH ROW EXECUTE FUNCTION oracle.gpt_usage_log_transition();

-- Nobody deletes usage: a deleted row would be a call that stops counting.
CREATE OR REPLACE FUNCTION oracle.gpt_usage_log_no_delete() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'gpt_usage_log rows are never deleted' USING ERRCODE = 'insufficient_privilege';
END $$;
REVOKE ALL ON FUNCTION oracle.gpt_usage_log_no_delete() FROM PUBLIC;
CREATE TRIGGER gpt_usage_log_no_delete BEFORE DELETE ON oracle.gpt_usage_log
  FOR EACH ROW EXECUTE FUNCTION oracle.gpt_usage_log_no_delete();
