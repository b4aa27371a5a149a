-- sqlite3 benchmark workload: build, index, query and rewrite a table of 200k rows in memory.
create table t(id integer primary key, k text, v real, pad blob);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000)
  insert into t select x, printf('key%06d', (x * 7919) % 200000), x * 0.25, zeroblob(x % 200) from c;
create index t_k on t(k);
select count(*), sum(v), min(k), max(k) from t;
select substr(k, 1, 5), count(*), avg(v) from t group by 1 order by 1 limit 3;
update t set pad = zeroblob(id % 300) where id % 2 = 0;
delete from t where id % 3 = 0;
select count(*), sum(length(pad)) from t;
create table u as select k, group_concat(id) as ids from t group by substr(k, 1, 6);
select count(*), sum(length(ids)) from u;
