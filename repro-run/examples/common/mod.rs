//! What the benchmark examples share: the process's peak memory and a fresh server
//! database to run on.

use repro_db::Store;

/// The process's peak RSS (since start, or since the peak was last reset), in MiB.
pub fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// The database a server URL names, dropped and made anew (its server's `test` database
/// must exist to connect to). Refuses `test` itself and names that are not plain words,
/// since it drops them.
pub async fn fresh_server_database(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, db) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{url} names no database"))?;
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    if db.is_empty() || db == "test" || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "{url}: name a database of letters, digits and _ other than test; it is dropped"
        )
        .into());
    }
    let admin = Store::open(&format!("{server}/test{query}")).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db}"))
        .await?;
    Ok(url.to_owned())
}
