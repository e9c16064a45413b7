-- Executor: the signing deadline in exchange time, and the reconciler's schedule per execution
-- (docs/design.md#late-send-deadline, #found-late-adoption,
-- #reconciler).
--
-- * sign_deadline_ms: the exchange time (epoch ms) after which the order of a SUBMITTING
--   execution is never signed; stored in the same transaction as SUBMITTING. Proven absent is
--   concluded only once exchange time is past it + access window + margin.
-- * next_reconcile_at / reconcile_attempts / reconcile_error: when the reconciler looks at the
--   execution again, how often in a row it could not settle it, and why. An execution whose
--   handling raised is pushed back (doubling), so no set of rows that never resolve can hold
--   the head of the queue; every examined row goes to the back of it.
-- * found_late_until: an execution FAILED as PROVEN_ABSENT is still looked up until then (the
--   one way out of FAILED, docs/design.md#found-late-adoption).
-- * fee_pending: a fill was recorded before its fee settled; looked up again until it has.
--
-- next_reconcile_at and found_late_until are stamped with the database's clock_timestamp()
-- (one clock for every replica); sign_deadline_ms is exchange time, as the signature is.

ALTER TABLE oracle.trade_executions
  ADD COLUMN sign_deadline_ms   bigint,
  ADD COLUMN next_reconcile_at  timestamptz,
  ADD COLUMN reconcile_attempts integer NOT NULL DEFAULT 0 CHECK (reconcile_attempts >= 0),
  ADD COLUMN reconcile_error    text,
  ADD COLUMN found_late_until   timestamptz,
  ADD COLUMN fee_pending        boolean NOT NULL DEFAULT false;

-- Whether the reconciler still has something to do for an execution (besides being due).
CREATE FUNCTION oracle.execution_needs_reconcile(p_status text, p_found_late_until timestamptz,
                                                 p_fee_pending boolean)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT NOT oracle.execution_is_final(p_status) OR p_found_late_until IS NOT NULL OR p_fee_pending
$$;
REVOKE ALL ON FUNCTION oracle.execution_needs_reconcile(text, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.execution_needs_reconcile(text, timestamptz, boolean)
  TO oracle_executor, oracle_definer;

CREATE INDEX trade_executions_reconcile_queue
  ON oracle.trade_executions (mode, next_reconcile_at NULLS FIRST, updated_at)
  WHERE oracle.execution_needs_reconcile(status, found_late_until, fee_pending);

-- The reconciler's candidates of one mode, across users, leased: due now (by the database's
-- clock), the longest-waiting first (never looked at first, then by their due time), at most
-- p_limit, and each pushed p_lease_seconds ahead in the same statement, so replicas reconciling
-- at once take different rows (SKIP LOCKED) and a row examined goes to the back of the queue.
CREATE FUNCTION oracle.executions_to_reconcile(p_mode text, p_limit integer, p_lease_seconds double precision)
  RETURNS TABLE (execution_id uuid, user_id text)
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH picked AS (
    SELECT c.execution_id, c.user_id, c.next_reconcile_at, c.updated_at FROM oracle.trade_executions c
     WHERE c.mode = p_mode
       AND oracle.execution_needs_reconcile(c.status, c.found_late_until, c.fee_pending)
       AND (c.found_late_until IS NULL OR c.status <> 'FAILED' OR c.found_late_until > clock_timestamp())
       AND (c.next_reconcile_at IS NULL OR c.next_reconcile_at <= clock_timestamp())
     ORDER BY c.next_reconcile_at NULLS FIRST, c.updated_at
     LIMIT GREATEST(p_limit, 0)
     FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE oracle.trade_executions e
       SET next_reconcile_at = clock_timestamp() + make_interval(secs => GREATEST(p_lease_seconds, 0))
      FROM picked WHERE e.execution_id = picked.execution_id
    RETURNING e.execution_id
  )
  SELECT p.execution_id, p.user_id::text FROM picked p JOIN leased l ON l.execution_id = p.execution_id
   ORDER BY p.next_reconcile_at NULLS FIRST, p.updated_at
$$;
ALTER FUNCTION oracle.executions_to_reconcile(text, integer, double precision) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.executions_to_reconcile(text, integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.executions_to_reconcile(text, integer, double precision) TO oracle_executor;
-- the lease is the one column the definer writes
GRANT UPDATE (next_reconcile_at) ON oracle.trade_executions TO oracle_definer;

-- A fee that settles after its fill was recorded is written onto the recorded fill.
GRANT UPDATE ON oracle.trade_history TO oracle_executor;

-- Dead surface: the reconciler reads executions_to_reconcile now.
DROP FUNCTION oracle.unresolved_executions_of_mode(text, integer);
