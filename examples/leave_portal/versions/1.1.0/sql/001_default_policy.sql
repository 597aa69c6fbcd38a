insert into leave_portal.leave_policy (code, title, days_per_year)
values ('STD', 'Standard; 25 days', 25.0)
on conflict (code) do nothing;
update leave_portal.leave_balance set policy_code = 'STD' where policy_code is null;
