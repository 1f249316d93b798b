-- Traces (issue 18): the OpenTelemetry trace of a run and the id of its root span, as
-- lowercase hex (32 and 16 digits). Set once, by the first worker that drives the run with
-- tracing on, so a run resumed after a restart or on another node continues the same trace.
-- NULL while the run was never driven by a tracing node.
ALTER TABLE runs ADD COLUMN trace_id TEXT;
ALTER TABLE runs ADD COLUMN trace_span_id TEXT;
