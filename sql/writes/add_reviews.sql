-- purpose: add verdicts (one from the review page, or a Raven table's in one go) in the caller's
-- transaction; rows are only ever added (the newest verdict per detection counts)
-- inputs: _reviews (rows shaped like `reviews`)
insert into reviews by name select * from _reviews;
