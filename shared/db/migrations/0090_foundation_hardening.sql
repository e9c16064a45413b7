-- Foundation hardening, after every service's migrations:
-- 1. No function in the schema is executable by PUBLIC: PostgreSQL grants EXECUTE to PUBLIC by
--    default, which made the cross-user SECURITY DEFINER functions callable by every role.
--    Each function is executable only by the roles granted in the migration that made it
--    (docs/database.md lists them; a test compares).
-- 2. The audit trail can only be appended through oracle.append_audit_event, which keeps the
--    per-user hash chain and takes the service name from the login role, so no service can
--    write around the chain or in another service's name.
-- 3. A fill in trade_history belongs to its execution's user (the foreign key includes user_id;
--    foreign-key checks bypass row-level security, so a plain execution_id key would not).

ALTER DEFAULT PRIVILEGES IN SCHEMA oracle REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'oracle' LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oracle_auditor') THEN
    CREATE ROLE oracle_auditor NOLOGIN;
  END IF;
  IF NOT pg_has_role(current_user, 'oracle_auditor', 'MEMBER') THEN
    EXECUTE format('GRANT oracle_auditor TO %I', current_user);
  END IF;
END $$;
GRANT USAGE ON SCHEMA oracle TO oracle_auditor;
GRANT SELECT, INSERT ON oracle.audit_events TO oracle_auditor;
GRANT EXECUTE ON FUNCTION oracle.app_user() TO oracle_auditor;
REVOKE INSERT ON oracle.audit_events FROM oracle_scanner, oracle_executor, oracle_budget;

CREATE OR REPLACE FUNCTION oracle.append_audit_event(
  p_service text, p_kind text, p_subject_id text, p_principal text, p_payload jsonb)
  RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
DECLARE
  v_user text := oracle.app_user();
  -- A service's login role decides its name; only the owner (tests, operators) may choose.
  v_service text := CASE session_user
                      WHEN 'oracle_scanner' THEN 'scanner'
                      WHEN 'oracle_executor' THEN 'executor'
                      WHEN 'oracle_budget' THEN 'budget'
                    END;
  v_prev record;
  v_seq bigint;
  v_prev_hash text;
  v_hash text;
  v_at timestamptz := clock_timestamp();
BEGIN
  IF v_user IS NULL THEN
    RAISE EXCEPTION 'append_audit_event needs app.user_id' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF v_service IS NOT NULL AND v_service IS DISTINCT FROM p_service THEN
    RAISE EXCEPTION 'role % may not write audit events as %', session_user, p_service
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pg_advisory_xact_lock(2, hashtext(v_user));
  SELECT sequence, hash INTO v_prev FROM oracle.audit_events
    WHERE user_id = v_user ORDER BY sequence DESC LIMIT 1;
  v_seq := COALESCE(v_prev.sequence, 0) + 1;
  v_prev_hash := COALESCE(v_prev.hash, '');
  v_hash := encode(sha256(convert_to(
    v_prev_hash || '|' || v_user || '|' || v_seq || '|' || p_service || '|' || p_kind || '|' ||
    COALESCE(p_subject_id, '') || '|' || COALESCE(p_principal, '') || '|' || p_payload::text || '|' ||
    to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), 'UTF8')), 'hex');
  INSERT INTO oracle.audit_events (user_id, sequence, service, kind, subject_id, principal, payload,
                                   created_at, prev_hash, hash)
  VALUES (v_user, v_seq, p_service, p_kind, COALESCE(p_subject_id, ''), COALESCE(p_principal, ''),
          p_payload, v_at, v_prev_hash, v_hash);
  RETURN v_seq;
END $$;
ALTER FUNCTION oracle.append_audit_event(text, text, text, text, jsonb) OWNER TO oracle_auditor;
REVOKE EXECUTE ON FUNCTION oracle.append_audit_event(text, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.append_audit_event(text, text, text, text, jsonb)
  TO oracle_scanner, oracle_executor, oracle_budget;

ALTER TABLE oracle.trade_executions
  ADD CONSTRAINT trade_executions_execution_user_key UNIQUE (execution_id, user_id);
ALTER TABLE oracle.trade_history
  ADD CONSTRAINT trade_history_execution_user_fkey FOREIGN KEY (execution_id, user_id)
  REFERENCES oracle.trade_executions (execution_id, user_id);
