-- purpose: version 6 — what the source check found (docs/source.md) kept with the results: a
-- recording's own warnings (band beyond the model's, start-time sources that disagree) and the
-- disagreement in seconds; a run's warnings (printed in its header). Frozen history: never edit.
alter table recordings add column time_conflict_s double;
alter table recordings add column warnings varchar[];
alter table runs add column warnings varchar[];
