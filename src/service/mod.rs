//! The services below the HTTP layer: "run one search", "describe one table", "run one SQL
//! query", each taking parsed parameters and the caller and returning a typed answer. The HTTP
//! adapters (`api/`), the DataTables view (`datatables`) and the dump command (`dump/`) all
//! call these; none of them builds SQL or checks access itself.

pub mod gate;
pub mod info;
pub mod search;
pub mod sql;
