-- purpose: upsert deployment metadata from deployments.csv (and ids seen in the source)
-- inputs: _deployments (rows shaped like `deployments`)
delete from deployments where deployment_id in (select deployment_id from _deployments);
insert into deployments by name select * from _deployments;
