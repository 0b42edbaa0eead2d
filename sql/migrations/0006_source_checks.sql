-- purpose: version 6 — what the source check found (docs/source.md) kept with the results: a
-- recording's own warnings (band beyond the model's, start-time sources that disagree, metadata
-- its header held that discovery refused, such as an offset out of range) and the disagreement
-- in seconds; a run's warnings (printed in its header); who changed a setting, and
-- when. Frozen history: never edit.
alter table recordings add column time_conflict_s double;
alter table recordings add column warnings varchar[];
alter table runs add column warnings varchar[];
-- Who changed a catalog setting (the default thresholds: `dawnchorus thresholds`), and when.
create table if not exists setting_changes (
    key varchar not null,
    value varchar not null,
    changed_by varchar not null,
    changed_at timestamptz not null
);
