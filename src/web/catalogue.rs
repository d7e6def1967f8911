//! The application descriptions offered on the "New execution" page, bundled in the binary.
//! The first ones use the image `zoe-test-busybox:latest` (busybox, built by
//! `tests/images/build.sh`); the analytics applications are the files of `apps/`, with the
//! images of `apps/build-images.sh`.

/// One bundled application description.
#[derive(Debug)]
pub struct Entry {
    /// Its key in forms and URLs.
    pub key: &'static str,
    pub title: &'static str,
    /// One sentence about what it does.
    pub summary: &'static str,
    /// A suggested execution name.
    pub execution_name: &'static str,
    /// The description, as JSON text.
    pub json: &'static str,
}

/// Every bundled description.
pub const CATALOGUE: &[Entry] = &[
    Entry {
        key: "web-server",
        title: "Web server",
        summary: "busybox httpd serving your workspace (its index.html first), opened through Zoe's proxy.",
        execution_name: "web",
        json: include_str!("catalogue/web-server.json"),
    },
    Entry {
        key: "sleeper",
        title: "Sleeper",
        summary: "A container that says hello and sleeps for an hour: a long-running service to try things with.",
        execution_name: "sleeper",
        json: include_str!("catalogue/sleeper.json"),
    },
    Entry {
        key: "batch",
        title: "Batch job",
        summary: "Counts three steps, one a second, and ends: a job that finishes on its own.",
        execution_name: "batch",
        json: include_str!("catalogue/batch.json"),
    },
    Entry {
        key: "jupyter",
        title: "Jupyter notebook",
        summary: "JupyterLab in your workspace, opened through Zoe (with PySpark running locally in the notebook).",
        execution_name: "notebook",
        json: include_str!("../../apps/jupyter.json"),
    },
    Entry {
        key: "spark-jupyter",
        title: "Spark cluster with a notebook",
        summary:
            "A Spark master, two workers and JupyterLab, where SparkSession.builder.getOrCreate() uses the cluster.",
        execution_name: "spark",
        json: include_str!("../../apps/spark-jupyter.json"),
    },
    Entry {
        key: "spark-wordcount",
        title: "Spark word count",
        summary:
            "Counts the words of wordcount/input.txt in your workspace on a Spark cluster; writes wordcount/output/.",
        execution_name: "wordcount",
        json: include_str!("../../apps/spark-wordcount.json"),
    },
];

/// The entry with this key.
pub fn find(key: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.key == key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;
    use zoe_actors::description::app_description::parse_application;

    #[test]
    fn every_entry_is_a_valid_description() {
        for e in CATALOGUE {
            let v: serde_json::Value = serde_json::from_str(e.json).unwrap_or_else(|err| panic!("{}: {err}", e.key));
            parse_application(&v).unwrap_or_else(|err| panic!("{}: {err}", e.key));
            assert!(zoe_checkpoints::is_dns_label(e.execution_name));
            assert_eq!(find(e.key).map(|f| f.key), Some(e.key));
        }
    }
}
