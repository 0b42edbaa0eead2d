-- purpose: version 9 — quality per window (docs/effort.md, "Quality per window"): each analysed
-- window's level, peak, fraction of clipped frames, longest run of exact zeros and verdict (ok,
-- silent, dropout, clipped), measured by the run on the samples as decoded
-- (connectors/audio_qc.py). Windows analysed before this version keep NULL in all five: "not
-- measured", which the effort analyses count as effort and the QC analysis counts apart.
-- Frozen history: never edit; add a migration instead.
alter table windows add column rms_dbfs double;
alter table windows add column peak_dbfs double;
alter table windows add column clipped_fraction double;
alter table windows add column zero_run_s double;
alter table windows add column qc varchar;
