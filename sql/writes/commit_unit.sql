-- purpose: commit one work unit in the caller's transaction: its windows (the effort rows, which
-- double as the resume journal) and its predictions. A window committed again (a retry of a failed
-- window) replaces its failed row, so every window keeps exactly one row per fingerprint. A window
-- already committed ok is left as it is, with its predictions and embeddings: committing the same
-- unit twice (a signal landing between the database's commit and the caller's bookkeeping) adds
-- nothing, so exactly-once does not depend on the caller.
-- inputs: _unit_windows, _unit_predictions, _unit_embeddings (empty unless the run asks for them)
delete from windows
where status = 'failed'
    and exists (
        select 1
        from _unit_windows as u
        where u.config_fingerprint = windows.config_fingerprint
            and u.recording_id = windows.recording_id
            and u.channel = windows.channel
            and u.window_index = windows.window_index
    );
-- Predictions before windows: "already committed" means the window's row is there.
insert into predictions by name
select p.*
from _unit_predictions as p
where not exists (
    select 1
    from windows as w
    where w.config_fingerprint = p.config_fingerprint
        and w.recording_id = p.recording_id
        and w.channel = p.channel
        and w.window_index = p.window_index
);
-- A vector is added where the window has none (a run with --embeddings over windows analysed
-- without them analyses them again for their vectors only).
insert into embeddings by name
select e.*
from _unit_embeddings as e
where not exists (
    select 1
    from embeddings as x
    where x.config_fingerprint = e.config_fingerprint
        and x.recording_id = e.recording_id
        and x.channel = e.channel
        and x.window_index = e.window_index
);
insert into windows by name
select u.*
from _unit_windows as u
where not exists (
    select 1
    from windows as w
    where w.config_fingerprint = u.config_fingerprint
        and w.recording_id = u.recording_id
        and w.channel = u.channel
        and w.window_index = u.window_index
);
