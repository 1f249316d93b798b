-- Operations (issue 18): the worker whose expired lease a claim took over, set by the claim
-- itself (the SET clause sees the row before the update), so a node can count takeovers
-- (`coworker_lease_takeovers_total`) and an operator can see which worker let a run go.
-- NULL when the run was claimed from `ready` or `waiting`.
ALTER TABLE runs ADD COLUMN lease_taken_from TEXT;
