//! What one check found, and how a list of them is printed and turned into an exit status.

use std::fmt::Write as _;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but differs from CKAN or from what is advised; does not fail the run.
    Warn,
    /// Broken: clients get wrong answers or errors. Fails the run.
    Fail,
    /// Not applicable to this configuration.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// The setting (or path) checked, so the line names what to change.
    pub name: String,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What to do about it (None when nothing needs doing).
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            found: found.into(),
            fix: None,
        }
    }

    pub fn skip(name: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            ..Check::ok(name, found)
        }
    }

    pub fn fail(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::ok(name, found)
        }
    }

    pub fn warn(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            ..Check::fail(name, found, fix)
        }
    }
}

/// One line per check: `STATUS name: found — fix: …`.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let _ = write!(
            out,
            "{:<4}  {:<width$}  {}",
            c.status.label(),
            c.name,
            c.found
        );
        if let Some(fix) = &c.fix {
            let _ = write!(out, " — fix: {fix}");
        }
        out.push('\n');
    }
    out
}

/// Whether every check passed (warnings and skips do not fail the run).
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_check_and_only_failures_fail() {
        let checks = [
            Check::ok("read_url", "reachable"),
            Check::warn(
                "ckan.plugins",
                "lists `spatial`",
                "list it in auth_neutral_plugins",
            ),
        ];
        assert!(passed(&checks));
        assert_eq!(
            render(&checks),
            "ok    read_url      reachable\n\
             WARN  ckan.plugins  lists `spatial` — fix: list it in auth_neutral_plugins\n"
        );
        assert!(!passed(&[Check::fail("x", "broken", "mend it")]));
    }
}
