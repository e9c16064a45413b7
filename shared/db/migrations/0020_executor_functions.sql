-- Executor: the cross-user functions the executor needs beyond the foundation's.
--
-- A live executor and a paper executor may share one database: each reconciles only the
-- executions of its own mode, and the balance check of a sell needs the base asset that other
-- users' sells of the same market already have in flight on the shared exchange account, and
-- paper mode keeps a wallet of its own.

-- Executions of one mode the reconciler must look at: every non-terminal one, oldest first.
CREATE OR REPLACE FUNCTION oracle.unresolved_executions_of_mode(p_mode text, p_limit integer)
  RETURNS TABLE (execution_id uuid, user_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT e.execution_id, e.user_id::text FROM oracle.trade_executions e
   WHERE e.mode = p_mode
     AND e.status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN')
   ORDER BY e.updated_at
   LIMIT GREATEST(p_limit, 0)
$$;
ALTER FUNCTION oracle.unresolved_executions_of_mode(text, integer) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.unresolved_executions_of_mode(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.unresolved_executions_of_mode(text, integer) TO oracle_executor;

-- EUR of one side's orders that the exchange balance fetched at p_since may not yet reflect,
-- across users: claimed and not final, or turned final (with money moved) since p_since. The
-- balance check subtracts it, so concurrent executions of different users cannot spend the same
-- euros (or, for sells of one market, the same base asset).
CREATE OR REPLACE FUNCTION oracle.account_in_flight_eur(p_mode text, p_side text, p_market text,
                                                        p_since timestamptz)
  RETURNS numeric
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(sum(e.amount_quote), 0) FROM oracle.trade_executions e
   WHERE e.mode = p_mode AND e.side = p_side AND (p_market IS NULL OR e.market = p_market)
     AND (e.status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN')
          OR (e.status <> 'FAILED' AND e.updated_at >= p_since))
$$;
ALTER FUNCTION oracle.account_in_flight_eur(text, text, text, timestamptz) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.account_in_flight_eur(text, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.account_in_flight_eur(text, text, text, timestamptz) TO oracle_executor;

-- Paper mode's wallet for the whole account: EUR spent net by paper fills (buys with their fees
-- minus the proceeds of sells) and the base asset of one market held by them.
CREATE OR REPLACE FUNCTION oracle.paper_wallet(p_market text)
  RETURNS TABLE (eur_spent numeric, base_held numeric)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT
    COALESCE(sum(CASE WHEN e.side = 'buy' THEN e.filled_amount_quote + e.fee_paid
                      ELSE -(e.filled_amount_quote - e.fee_paid) END), 0),
    COALESCE(sum(CASE WHEN e.side = 'buy' THEN e.filled_amount ELSE -e.filled_amount END)
               FILTER (WHERE e.market = p_market), 0)
  FROM oracle.trade_executions e
  WHERE e.mode = 'paper' AND e.filled_amount > 0
$$;
ALTER FUNCTION oracle.paper_wallet(text) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.paper_wallet(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.paper_wallet(text) TO oracle_executor;

-- The executions of one user in one mode by claim time: what cooldown, anti-flip, caps and the
-- notional cap read.
CREATE INDEX IF NOT EXISTS trade_executions_user_mode_claimed
  ON oracle.trade_executions (user_id, mode, claimed_at DESC);
