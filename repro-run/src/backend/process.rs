//! Running a site tool: argv (never a shell), a timeout, stdout and stderr kept.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a tool printed and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-line account of a failure: exit code and the end of stderr.
    pub fn failure(&self, argv0: &str) -> String {
        let err = self.stderr.trim();
        let tail: String = err
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        match self.code {
            Some(c) => format!(
                "{argv0} exited {c}{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ),
            None => format!(
                "{argv0} was killed by a signal{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ),
        }
    }
}

/// Why a tool could not be run to its end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// It could not start (missing, not executable).
    #[error("cannot run {argv0}: {why}")]
    Spawn {
        /// The program.
        argv0: String,
        /// Why.
        why: String,
    },
    /// It ran past its timeout and was killed.
    #[error("{argv0} timed out after {secs} s and was killed{stderr}")]
    Timeout {
        /// The program.
        argv0: String,
        /// The timeout.
        secs: u64,
        /// What it had printed on stderr.
        stderr: String,
    },
}

/// Runs `argv` with no stdin, killing it after `timeout`.
pub fn run(argv: &[String], timeout: Duration) -> Result<Ran, RunError> {
    run_with(argv, &[], timeout)
}

/// [`run`] with `env` added to its environment.
pub fn run_with(argv: &[String], env: &[(&str, &str)], timeout: Duration) -> Result<Ran, RunError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RunError::Spawn {
            argv0: String::new(),
            why: "empty command".into(),
        });
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        // Its own process group, so that a timeout kills whatever the tool started too
        // (a shell script's `sleep` would otherwise keep the pipes open).
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn {
            argv0: program.clone(),
            why: e.to_string(),
        })?;
    // Drain both pipes while waiting, so a chatty tool cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(RunError::Spawn {
                    argv0: program.clone(),
                    why: e.to_string(),
                });
            }
        }
    };
    let stdout = String::from_utf8_lossy(&out_thread.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    match status {
        Some(s) => Ok(Ran {
            code: s.code(),
            stdout,
            stderr,
        }),
        None => Err(RunError::Timeout {
            argv0: program.clone(),
            secs: timeout.as_secs(),
            stderr: if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            },
        }),
    }
}

/// Runs `f` over `items`, at most `parallel` at once, keeping the order of results.
pub fn bounded<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let parallel = parallel.max(1);
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(parallel) {
        let results: Vec<R> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|i| s.spawn(|| f(i))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a tool runner thread panicked"))
                .collect()
        });
        out.extend(results);
    }
    out
}

/// Quotes one word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_tool_runs_without_a_shell_and_its_output_is_kept() {
        let r = run(
            &argv(&["/bin/echo", "a;b", "$HOME"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(r.ok());
        assert_eq!(r.stdout, "a;b $HOME\n");
    }

    #[test]
    fn a_hanging_tool_is_killed_at_its_timeout() {
        let t = Instant::now();
        let e = run(&argv(&["/bin/sleep", "30"]), Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("timed out after 0 s"), "{e}");
    }

    #[test]
    fn a_missing_tool_is_a_spawn_error_naming_it() {
        let e = run(&argv(&["/nonexistent/tool"]), Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot run /nonexistent/tool"),
            "{e}"
        );
    }

    #[test]
    fn quoting_for_sh() {
        assert_eq!(shell_quote("/a/b.tmb"), "/a/b.tmb");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
    }
}
