-- purpose: forget failed windows of one fingerprint so that a run with retry_failed plans them again
-- parameters: $1 = config_fingerprint
delete from windows where config_fingerprint = $1 and status = 'failed'
