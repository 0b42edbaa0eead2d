-- purpose: every deployment the catalog holds, by id
select * from deployments order by deployment_id
