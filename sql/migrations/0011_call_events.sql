-- purpose: version 11 — bats (issue 23; docs/bat-analyses.md): models that locate calls
-- (BatDetect2) give each classify answer the call's own time-frequency box, and every window
-- says which frequency band its model analysed, so effort can tell "no bats" from "no bats
-- could have been heard".
-- predictions: call_start_s / call_end_s are seconds from the start of the recording (the frame
-- of offset_s, and of Raven's Begin Time), not of the window: a pass runs across windows, and a
-- call seen by two overlapping windows has one time. low_freq_hz / high_freq_hz bound the call;
-- detection_score is the probability that there is a call at all (score stays the class
-- probability). Window-level models, and rows written before this version, leave all five NULL.
-- windows: band_low_hz / band_high_hz, the band the model analysed in this window: its band_hz,
-- with the top cut to the recording's own Nyquist frequency where that is lower. NULL: analysed
-- before this version (band not recorded).
-- Frozen history: never edit; add a migration instead.
alter table predictions add column call_start_s double;
alter table predictions add column call_end_s double;
alter table predictions add column low_freq_hz double;
alter table predictions add column high_freq_hz double;
alter table predictions add column detection_score double;
alter table windows add column band_low_hz double;
alter table windows add column band_high_hz double;
