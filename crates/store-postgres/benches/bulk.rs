//! Which way the journal writes many rows: arrays through `unnest` (what it does) or
//! binary `COPY`. Both write the same memberships into a table shaped and indexed as
//! the store's, in the same run, alternating, three rounds each; printed as rows per
//! second and their ratio.
//!
//! `COHORT_TEST_POSTGRES=postgres://... cargo bench -p cohort-store-postgres --bench bulk`
//! (`scripts/postgres start DIR` prints such a URL); `-- --rows N` for another size.

use std::time::Instant;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};

const TABLE: &str = "CREATE TEMP TABLE m (
    id bigint PRIMARY KEY, customer text NOT NULL, grp text NOT NULL, source text NOT NULL,
    actor text NOT NULL, reason text NOT NULL, starts bigint NOT NULL, ends bigint,
    announced text NOT NULL);
  CREATE INDEX m_by_group ON m (grp, customer, starts);
  CREATE INDEX m_by_customer ON m (customer);";

struct Rows {
    ids: Vec<i64>,
    customers: Vec<String>,
}

fn unnest(client: &mut Client, rows: &Rows) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    let statement = tx.prepare(
        "INSERT INTO m (id, customer, grp, source, actor, reason, starts, ends, announced)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bigint[], $8::bigint[], $9::text[])",
    )?;
    for (ids, customers) in rows.ids.chunks(50_000).zip(rows.customers.chunks(50_000)) {
        let n = ids.len();
        tx.execute(
            &statement,
            &[
                &ids,
                &customers,
                &vec!["eu-residents"; n],
                &vec!["rule"; n],
                &vec!["rule:eu-residents"; n],
                &vec!["the rule matches"; n],
                &vec![1_795_564_800i64; n],
                &vec![None::<i64>; n],
                &vec!["active"; n],
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn copy(client: &mut Client, rows: &Rows) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    let sink = tx.copy_in(
        "COPY m (id, customer, grp, source, actor, reason, starts, ends, announced)
         FROM STDIN BINARY",
    )?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for (id, customer) in rows.ids.iter().zip(&rows.customers) {
        writer.write(&[
            id,
            customer,
            &"eu-residents",
            &"rule",
            &"rule:eu-residents",
            &"the rule matches",
            &1_795_564_800i64,
            &None::<i64>,
            &"active",
        ])?;
    }
    writer.finish()?;
    tx.commit()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut n = 200_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "--bench" => {}
            other => anyhow::bail!("unknown argument `{other}` (use --rows N)"),
        }
    }
    let url = std::env::var("COHORT_TEST_POSTGRES")
        .map_err(|_| anyhow::anyhow!("set COHORT_TEST_POSTGRES to a server's URL"))?;
    let mut client = Client::connect(&url, NoTls)?;
    client.batch_execute(TABLE)?;
    let rows = Rows {
        ids: (1..=n as i64).collect(),
        customers: (0..n)
            .map(|i| format!("C-{:07}", (i * 7_919) % n))
            .collect(),
    };
    let mut seconds = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (way, write) in [unnest as fn(&mut Client, &Rows) -> _, copy]
            .into_iter()
            .enumerate()
        {
            client.batch_execute("TRUNCATE m")?;
            let t = Instant::now();
            write(&mut client, &rows)?;
            seconds[way].push(t.elapsed().as_secs_f64());
        }
    }
    let rate = |s: &[f64]| {
        let mut s = s.to_vec();
        s.sort_by(f64::total_cmp);
        n as f64 / s[s.len() / 2]
    };
    let (u, c) = (rate(&seconds[0]), rate(&seconds[1]));
    println!("{n} memberships into an indexed table, median of 3 rounds:");
    println!("  unnest arrays  {u:>10.0} rows/s   {:?}", seconds[0]);
    println!("  binary COPY    {c:>10.0} rows/s   {:?}", seconds[1]);
    println!("  COPY / unnest  {:>10.2}", c / u);
    Ok(())
}
