-- purpose: every calibrated (or not calibrated) species, for calibration curves and listings
-- grain: one row per config_fingerprint and label
-- inputs: thresholds
select * from thresholds order by label, config_fingerprint
