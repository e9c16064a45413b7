-- Executor: each rule about an execution's status written once, and every statement reads it.
--
-- Before this migration the list of non-final statuses stood in four functions, a partial index
-- and the executor's own SQL, and the "counts toward the limits" rule in two places. Now:
--
-- * oracle.execution_is_final(status): FILLED, CANCELED and FAILED are final; every other status
--   is still moving (the reconciler looks at it, its EUR may still be in flight). The executor's
--   state machine (services/executor/state_machine.py, TERMINAL) must agree: a test compares.
-- * oracle.execution_counts(status, filled_amount): an execution counts toward caps, cooldown,
--   anti-flip and the notional caps unless it FAILED or was CANCELED without any fill.
--
-- Both are plain IMMUTABLE SQL functions (no SECURITY DEFINER, no SET), so the planner inlines
-- them and the partial index below still serves the reconciler's query.
--
-- Dead surface dropped: oracle.unresolved_executions (every caller uses the per-mode one) and
-- account_notional's in_flight_buy_eur column (the balance check reads account_in_flight_eur).

CREATE FUNCTION oracle.execution_is_final(p_status text)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT p_status IN ('FILLED', 'CANCELED', 'FAILED')
$$;
REVOKE ALL ON FUNCTION oracle.execution_is_final(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.execution_is_final(text) TO oracle_executor, oracle_definer;

CREATE FUNCTION oracle.execution_counts(p_status text, p_filled_amount numeric)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT p_status <> 'FAILED' AND NOT (p_status = 'CANCELED' AND p_filled_amount = 0)
$$;
REVOKE ALL ON FUNCTION oracle.execution_counts(text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.execution_counts(text, numeric) TO oracle_executor, oracle_definer;

DROP INDEX oracle.trade_executions_unresolved;
CREATE INDEX trade_executions_unresolved ON oracle.trade_executions (updated_at)
  WHERE NOT oracle.execution_is_final(status);

DROP FUNCTION oracle.unresolved_executions(integer);

CREATE OR REPLACE FUNCTION oracle.unresolved_executions_of_mode(p_mode text, p_limit integer)
  RETURNS TABLE (execution_id uuid, user_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT e.execution_id, e.user_id::text FROM oracle.trade_executions e
   WHERE e.mode = p_mode AND NOT oracle.execution_is_final(e.status)
   ORDER BY e.updated_at
   LIMIT GREATEST(p_limit, 0)
$$;

CREATE OR REPLACE FUNCTION oracle.account_in_flight_eur(p_mode text, p_side text, p_market text,
                                                        p_since timestamptz)
  RETURNS numeric
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(sum(e.amount_quote), 0) FROM oracle.trade_executions e
   WHERE e.mode = p_mode AND e.side = p_side AND (p_market IS NULL OR e.market = p_market)
     AND (NOT oracle.execution_is_final(e.status)
          OR (e.status <> 'FAILED' AND e.updated_at >= p_since))
$$;

-- The return type changes (in_flight_buy_eur goes), so the function is dropped and made again.
DROP FUNCTION oracle.account_notional(text, timestamptz, timestamptz);
CREATE FUNCTION oracle.account_notional(p_mode text, p_from timestamptz, p_to timestamptz)
  RETURNS TABLE (claimed_eur numeric)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(sum(e.amount_quote), 0) FROM oracle.trade_executions e
   WHERE e.mode = p_mode AND e.claimed_at >= p_from AND e.claimed_at < p_to
     AND oracle.execution_counts(e.status, e.filled_amount)
$$;
ALTER FUNCTION oracle.account_notional(text, timestamptz, timestamptz) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.account_notional(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.account_notional(text, timestamptz, timestamptz) TO oracle_executor;
