-- Proposals are immutable and stamped by the database (docs/design.md#one-clock-per-decision).
--
-- 1. The scanner may no longer UPDATE trade_proposals: the only change a proposal ever sees is
--    open -> expired, made by oracle.expire_due_proposals (SECURITY DEFINER, oracle_definer).
-- 2. A trigger refuses any other change once a row is written — market, side, amount,
--    confidence, snapshots, timestamps, anything but that one status move — whoever asks, the
--    table owner included: what the executor validated is what the proposal still says.
-- 3. created_at and expires_at are the database's: created_at is oracle.clock() at the insert;
--    the lifetime asked for (expires_at - created_at as inserted) is capped by
--    oracle.database_settings.proposal_max_lifetime, so no scanner keeps a proposal "fresh"
--    forever or dates it by its own clock.

REVOKE UPDATE ON oracle.trade_proposals FROM oracle_scanner;

CREATE FUNCTION oracle.trade_proposals_stamp()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = oracle, pg_temp
AS $$
DECLARE
  v_now timestamptz := oracle.clock();
  v_cap interval;
  v_life interval;
BEGIN
  SELECT proposal_max_lifetime INTO STRICT v_cap FROM oracle.database_settings WHERE id;
  v_life := NEW.expires_at - COALESCE(NEW.created_at, v_now);
  IF v_life IS NULL OR v_life <= interval '0' THEN
    RAISE EXCEPTION 'a proposal needs a positive lifetime (expires_at after created_at)'
      USING ERRCODE = 'check_violation';
  END IF;
  NEW.created_at := v_now;
  NEW.expires_at := v_now + LEAST(v_life, v_cap);
  RETURN NEW;
END $$;

CREATE FUNCTION oracle.trade_proposals_immutable()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = oracle, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND OLD.status = 'open' AND NEW.status = 'expired'
     AND (to_jsonb(NEW) - 'status') = (to_jsonb(OLD) - 'status') THEN
    RETURN NEW;  -- the one move a proposal makes
  END IF;
  RAISE EXCEPTION 'trade proposals are immutable once written (only open -> expired)'
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER trade_proposals_stamp BEFORE INSERT ON oracle.trade_proposals
  FOR EACH ROW EXECUTE FUNCTION oracle.trade_proposals_stamp();
CREATE TRIGGER trade_proposals_immutable BEFORE UPDATE ON oracle.trade_proposals
  FOR EACH ROW EXECUTE FUNCTION oracle.trade_proposals_immutable();

REVOKE ALL ON FUNCTION oracle.trade_proposals_stamp() FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.trade_proposals_immutable() FROM PUBLIC;
