-- purpose: add one classifier version (`dawnchorus learn`) in the caller's transaction; versions
-- are only ever added (a retraining is a new version, the old one's rows stay)
-- inputs: _classifier (one row shaped like `classifiers`)
insert into classifiers by name select * from _classifier;
