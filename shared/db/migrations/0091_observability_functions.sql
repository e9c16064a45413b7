-- Observability: the figures an operator's dashboard and alerts read from the database
-- (shared/metrics.py, services/executor/metrics.py). Each executor replica reads them at every
-- scrape; the alert rules aggregate the replicas with max(). Both functions return aggregates
-- only — counts, timestamps, a flag — never a user id or any row of a user.

-- oracle_definer reads across users through its cross_user_definer policies; it needs SELECT on
-- the policies and the account row for the kill-switch figures.
GRANT SELECT ON oracle.trading_policies TO oracle_definer;
GRANT SELECT ON oracle.account_settings TO oracle_definer;

-- Executions whose outcome is not final (oracle.execution_is_final, migration 0022), per mode
-- and status: how many, and when the one that has been in its status longest got there
-- (updated_at is stamped by every transition).
CREATE FUNCTION oracle.executions_not_final()
  RETURNS TABLE (mode text, status text, executions bigint, oldest_updated_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT e.mode, e.status, count(*), min(e.updated_at) FROM oracle.trade_executions e
   WHERE NOT oracle.execution_is_final(e.status)
   GROUP BY e.mode, e.status
$$;

-- The kill switches: the global one, and how many users have switched their own trading off.
CREATE FUNCTION oracle.kill_switch_state()
  RETURNS TABLE (global_enabled boolean, users_off bigint)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT (SELECT a.trading_enabled FROM oracle.account_settings a WHERE a.id),
         (SELECT count(*) FROM oracle.trading_policies p WHERE NOT p.trading_enabled)
$$;

ALTER FUNCTION oracle.executions_not_final() OWNER TO oracle_definer;
ALTER FUNCTION oracle.kill_switch_state() OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.executions_not_final() FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.kill_switch_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.executions_not_final() TO oracle_executor;
GRANT EXECUTE ON FUNCTION oracle.kill_switch_state() TO oracle_executor;
