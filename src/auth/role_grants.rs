//! The columns of CKAN's main database that access control reads, as `authz_role.sql` grants
//! them to its role. That file is the one list: the tests build their role with it, the
//! package ships it, and `doctor` checks a site's role against what it grants.

/// `src/sql_assets/authz_role.sql`.
pub const AUTHZ_ROLE_SQL: &str = include_str!("../sql_assets/authz_role.sql");

/// One `GRANT SELECT (columns) ON table` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub table: String,
    pub columns: Vec<String>,
}

/// The file's column grants, in its order.
pub fn grants() -> Vec<Grant> {
    AUTHZ_ROLE_SQL
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("GRANT SELECT (")?;
            let (columns, rest) = rest.split_once(')')?;
            let table = rest.trim().strip_prefix("ON")?.split_whitespace().next()?;
            Some(Grant {
                table: table.trim_matches('"').to_string(),
                columns: columns.split(',').map(|c| c.trim().to_string()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_grant_of_the_file() {
        let g = grants();
        let tables: Vec<&str> = g.iter().map(|g| g.table.as_str()).collect();
        assert_eq!(
            tables,
            [
                "api_token",
                "user",
                "resource",
                "package",
                "group",
                "member",
                "package_member",
                "resource_view"
            ]
        );
        assert_eq!(g[0].columns, ["id", "user_id"]);
        assert_eq!(g[1].columns, ["id", "name", "state", "sysadmin"]);
        // Every column grant line of the file was understood.
        let lines = AUTHZ_ROLE_SQL
            .lines()
            .filter(|l| l.starts_with("GRANT SELECT"))
            .count();
        assert_eq!(g.len(), lines);
    }
}
